#include "redis/reply.h"

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "hiredis/hiredis.h"

namespace taskmesh::redis {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

struct ReaderDeleter {
  void operator()(redisReader* r) const { redisReaderFree(r); }
};
struct HiredisReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};

// Parses RESP bytes with hiredis's own reader, as Connection receives them,
// and copies the resulting tree with Reply::FromHiredis.
Reply Parse(const std::string& resp) {
  std::unique_ptr<redisReader, ReaderDeleter> reader(redisReaderCreate());
  EXPECT_EQ(redisReaderFeed(reader.get(), resp.data(), resp.size()), REDIS_OK);
  void* raw = nullptr;
  EXPECT_EQ(redisReaderGetReply(reader.get(), &raw), REDIS_OK);
  EXPECT_NE(raw, nullptr) << "incomplete RESP: " << resp;
  std::unique_ptr<redisReply, HiredisReplyDeleter> reply(static_cast<redisReply*>(raw));
  return Reply::FromHiredis(reply.get());
}

TEST(ReplyFromHiredisTest, BulkStringIsBinarySafe) {
  const std::string value("a\0b\r\nc", 6);
  Reply r = Parse("$6\r\n" + value + "\r\n");
  EXPECT_EQ(r.type(), Reply::Type::kString);
  EXPECT_EQ(r.str(), value);
  EXPECT_EQ(r.str().size(), 6u);
  EXPECT_EQ(*r.AsString(), value);
}

TEST(ReplyFromHiredisTest, EmptyBulkStringIsNotNil) {
  Reply r = Parse("$0\r\n\r\n");
  EXPECT_EQ(r.type(), Reply::Type::kString);
  EXPECT_FALSE(r.is_nil());
  EXPECT_EQ(r.str(), "");
  EXPECT_EQ(*r.AsOptionalString(), absl::optional<std::string>(""));
}

TEST(ReplyFromHiredisTest, NilBulkAndNilArray) {
  Reply nil_bulk = Parse("$-1\r\n");
  EXPECT_TRUE(nil_bulk.is_nil());
  EXPECT_EQ(nil_bulk.type(), Reply::Type::kNil);
  Reply nil_array = Parse("*-1\r\n");
  EXPECT_TRUE(nil_array.is_nil());
  EXPECT_EQ(*nil_bulk.AsOptionalString(), absl::nullopt);
}

TEST(ReplyFromHiredisTest, StatusReply) {
  Reply r = Parse("+OK\r\n");
  EXPECT_EQ(r.type(), Reply::Type::kStatus);
  EXPECT_EQ(r.str(), "OK");
  EXPECT_FALSE(r.is_error());
  EXPECT_TRUE(r.ToStatus().ok());
  EXPECT_EQ(*r.AsString(), "OK");
}

TEST(ReplyFromHiredisTest, ErrorReplyIsAValue) {
  Reply r = Parse("-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
  EXPECT_EQ(r.type(), Reply::Type::kError);
  EXPECT_TRUE(r.is_error());
  EXPECT_EQ(r.str(), "WRONGTYPE Operation against a key holding the wrong kind of value");
  EXPECT_EQ(r.ToStatus().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(r.ToStatus().message()), ::testing::HasSubstr("WRONGTYPE"));
}

TEST(ReplyFromHiredisTest, IntegersIncludingExtremes) {
  EXPECT_EQ(Parse(":0\r\n").integer(), 0);
  EXPECT_EQ(Parse(":-42\r\n").integer(), -42);
  EXPECT_EQ(Parse(":9223372036854775807\r\n").integer(), INT64_MAX);
  EXPECT_EQ(Parse(":-9223372036854775808\r\n").integer(), INT64_MIN);
  Reply r = Parse(":7\r\n");
  EXPECT_EQ(r.type(), Reply::Type::kInteger);
  EXPECT_EQ(*r.AsInteger(), 7);
}

TEST(ReplyFromHiredisTest, NestedArrays) {
  // An XREADGROUP-shaped reply: [[stream, [[id, [field, value]]]]] plus nil.
  Reply r = Parse(
      "*2\r\n"
      "*2\r\n$6\r\nstream\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n"
      "$-1\r\n");
  ASSERT_EQ(r.type(), Reply::Type::kArray);
  ASSERT_EQ(r.elements().size(), 2u);
  const Reply& stream = r.elements()[0];
  ASSERT_EQ(stream.elements().size(), 2u);
  EXPECT_EQ(stream.elements()[0].str(), "stream");
  const Reply& entry = stream.elements()[1].elements()[0];
  EXPECT_EQ(entry.elements()[0].str(), "1-0");
  EXPECT_THAT(*entry.elements()[1].AsMap(), UnorderedElementsAre(Pair("f", "v")));
  EXPECT_TRUE(r.elements()[1].is_nil());
  EXPECT_EQ(r.DebugString(), R"([["stream", [["1-0", ["f", "v"]]]], (nil)])");
}

TEST(ReplyFromHiredisTest, EmptyArray) {
  Reply r = Parse("*0\r\n");
  EXPECT_EQ(r.type(), Reply::Type::kArray);
  EXPECT_TRUE(r.elements().empty());
  EXPECT_TRUE(r.AsMap()->empty());
  EXPECT_TRUE(r.AsArray(0).ok());
}

TEST(ReplyFromHiredisTest, NullPointerIsNil) {
  EXPECT_TRUE(Reply::FromHiredis(nullptr).is_nil());
}

TEST(ReplyTest, AsStringRejectsOtherTypes) {
  EXPECT_EQ(Reply::Integer(1).AsString().status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(Reply::Nil().AsString().status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(Reply::Array({}).AsString().status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(Reply::Error("NOAUTH Authentication required.").AsString().status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST(ReplyTest, AsOptionalStringRejectsOtherTypes) {
  EXPECT_EQ(Reply::Integer(1).AsOptionalString().status().code(),
            absl::StatusCode::kInternal);
  EXPECT_EQ(Reply::Error("OOM command not allowed").AsOptionalString().status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(**Reply::StatusReply("QUEUED").AsOptionalString(), "QUEUED");
}

TEST(ReplyTest, AsIntegerAcceptsDecimalStringsOnly) {
  EXPECT_EQ(*Reply::String("123").AsInteger(), 123);
  EXPECT_EQ(*Reply::String("-5").AsInteger(), -5);
  EXPECT_FALSE(Reply::String("12x").AsInteger().ok());
  EXPECT_FALSE(Reply::String("").AsInteger().ok());
  EXPECT_FALSE(Reply::String("99999999999999999999").AsInteger().ok());
  EXPECT_FALSE(Reply::Nil().AsInteger().ok());
  // A status reply is not a number even if it looks like one.
  EXPECT_FALSE(Reply::StatusReply("1").AsInteger().ok());
  EXPECT_EQ(Reply::Error("BUSY script running").AsInteger().status().code(),
            absl::StatusCode::kUnavailable);
}

TEST(ReplyTest, AsMapPairsFieldsAndValues) {
  Reply r = Reply::Array({Reply::String("a"), Reply::String("1"), Reply::String("b"),
                          Reply::String(std::string("\0", 1))});
  EXPECT_THAT(*r.AsMap(),
              UnorderedElementsAre(Pair("a", "1"), Pair("b", std::string("\0", 1))));
}

TEST(ReplyTest, AsMapRejectsOddLengthAndNonStrings) {
  EXPECT_FALSE(Reply::Array({Reply::String("a")}).AsMap().ok());
  EXPECT_FALSE(Reply::Array({Reply::String("a"), Reply::Nil()}).AsMap().ok());
  EXPECT_FALSE(Reply::Array({Reply::Integer(1), Reply::String("x")}).AsMap().ok());
  EXPECT_FALSE(Reply::String("a").AsMap().ok());
  EXPECT_FALSE(Reply::Nil().AsMap().ok());
  EXPECT_EQ(Reply::Error("NOPERM no").AsMap().status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(ReplyTest, AsArrayChecksLength) {
  Reply r = Reply::Array({Reply::Integer(1), Reply::Nil()});
  absl::StatusOr<const std::vector<Reply>*> two = r.AsArray(2);
  ASSERT_TRUE(two.ok());
  EXPECT_EQ((**two)[0].integer(), 1);
  EXPECT_TRUE((**two)[1].is_nil());
  EXPECT_EQ(r.AsArray(3).status().code(), absl::StatusCode::kInternal);
  EXPECT_FALSE(Reply::Nil().AsArray(0).ok());
  EXPECT_EQ(Reply::Error("LOADING Redis is loading").AsArray(2).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST(ReplyTest, AccessorsOfOtherTypesAreEmpty) {
  Reply i = Reply::Integer(5);
  EXPECT_EQ(i.str(), "");
  EXPECT_TRUE(i.elements().empty());
  Reply s = Reply::String("x");
  EXPECT_EQ(s.integer(), 0);
  EXPECT_TRUE(s.elements().empty());
}

TEST(ReplyTest, DebugString) {
  EXPECT_EQ(Reply::Nil().DebugString(), "(nil)");
  EXPECT_EQ(Reply::Integer(-3).DebugString(), "-3");
  EXPECT_EQ(Reply::StatusReply("OK").DebugString(), "OK");
  EXPECT_EQ(Reply::Error("ERR bad").DebugString(), "(error) ERR bad");
  EXPECT_EQ(Reply::Array({Reply::String("a"), Reply::Integer(1), Reply::Nil()}).DebugString(),
            R"(["a", 1, (nil)])");
  // Long strings are cut.
  const std::string long_debug = Reply::String(std::string(1000, 'x')).DebugString();
  EXPECT_LT(long_debug.size(), 100u);
  EXPECT_THAT(long_debug, ::testing::EndsWith("...\""));
}

TEST(ReplyTest, DebugStringEscapesBinary) {
  // Binary values must not put raw control bytes into logs.
  const std::string debug = Reply::String(std::string("a\0\n\"b", 5)).DebugString();
  EXPECT_EQ(debug.find('\0'), std::string::npos);
  EXPECT_EQ(debug.find('\n'), std::string::npos);
  EXPECT_EQ(debug, R"("a\000\n\"b")");
}

TEST(ErrorReplyToStatusTest, PrefixPicksCode) {
  struct Case {
    const char* message;
    absl::StatusCode code;
  };
  const Case cases[] = {
      {"LOADING Redis is loading the dataset in memory", absl::StatusCode::kUnavailable},
      {"READONLY You can't write against a read only replica.",
       absl::StatusCode::kUnavailable},
      {"MASTERDOWN Link with MASTER is down", absl::StatusCode::kUnavailable},
      {"TRYAGAIN Multiple keys request during rehashing", absl::StatusCode::kUnavailable},
      {"CLUSTERDOWN The cluster is down", absl::StatusCode::kUnavailable},
      {"BUSY Redis is busy running a script.", absl::StatusCode::kUnavailable},
      {"NOPERM this user has no permissions to run the 'xadd' command",
       absl::StatusCode::kPermissionDenied},
      {"NOAUTH Authentication required.", absl::StatusCode::kUnauthenticated},
      {"WRONGPASS invalid username-password pair or user is disabled.",
       absl::StatusCode::kUnauthenticated},
      {"OOM command not allowed when used memory > 'maxmemory'.",
       absl::StatusCode::kResourceExhausted},
      {"NOSCRIPT No matching script. Please use EVAL.", absl::StatusCode::kNotFound},
      {"BUSYGROUP Consumer Group name already exists", absl::StatusCode::kAlreadyExists},
      {"ERR unknown command 'FOO'", absl::StatusCode::kInternal},
      {"WRONGTYPE Operation against a key", absl::StatusCode::kInternal},
      {"NOSCRIPTX looks alike but is not", absl::StatusCode::kInternal},
      {"LOADING", absl::StatusCode::kUnavailable},  // No text after the prefix.
      {"", absl::StatusCode::kInternal},
  };
  for (const Case& c : cases) {
    absl::Status status = ErrorReplyToStatus(c.message);
    EXPECT_EQ(status.code(), c.code) << c.message;
    EXPECT_EQ(std::string(status.message()), std::string("redis: ") + c.message);
  }
}

}  // namespace
}  // namespace taskmesh::redis
