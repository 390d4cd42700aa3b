// The gRPC wire helpers: percent-coding of grpc-message, grpc-timeout,
// message framing, HTTP status mapping, protocol headers, -bin values.
#include "api_gateway/grpc_wire.h"

#include <string>

#include "gtest/gtest.h"

namespace taskmesh::gateway::grpc_wire {
namespace {

TEST(GrpcWireTest, PercentDecodingOfGrpcMessage) {
  EXPECT_EQ(PercentDecode("plain text"), "plain text");
  EXPECT_EQ(PercentDecode("100%25 sure%0Anext"), "100% sure\nnext");
  EXPECT_EQ(PercentDecode("na%C3%AFve"), "na\xC3\xAFve");
  EXPECT_EQ(PercentDecode("%c3%af"), "\xC3\xAF");
  // Malformed escapes stay as they are.
  EXPECT_EQ(PercentDecode("50% off, %zz, %4"), "50% off, %zz, %4");
  EXPECT_EQ(PercentDecode("%"), "%");
}

TEST(GrpcWireTest, PercentEncodingRoundTrips) {
  const std::string text = "caf\xC3\xA9 100% \n\x01";
  EXPECT_EQ(PercentEncode(text), "caf%C3%A9 100%25 %0A%01");
  EXPECT_EQ(PercentDecode(PercentEncode(text)), text);
}

TEST(GrpcWireTest, TimeoutsUseAtMostEightDigitsAndNeverShrink) {
  EXPECT_EQ(EncodeTimeout(absl::Milliseconds(500)), "500000u");
  EXPECT_EQ(EncodeTimeout(absl::Seconds(30)), "30000000u");
  EXPECT_EQ(EncodeTimeout(absl::Seconds(300)), "300000m");
  EXPECT_EQ(EncodeTimeout(absl::Hours(1)), "3600000m");
  EXPECT_EQ(EncodeTimeout(absl::Nanoseconds(1500)), "1500n");
  EXPECT_EQ(EncodeTimeout(absl::ZeroDuration()), "1n");
  EXPECT_EQ(EncodeTimeout(absl::Hours(24 * 365 * 100)), "52560000M");
}

TEST(GrpcWireTest, FramesHaveAFiveBytePrefix) {
  EXPECT_EQ(Frame("abc"), std::string("\0\0\0\0\3abc", 8));
  EXPECT_EQ(Frame(""), std::string(5, '\0'));
  EXPECT_EQ(Frame(std::string(300, 'x')).substr(0, 5), std::string("\0\0\0\x01\x2c", 5));
}

TEST(GrpcWireTest, HttpStatusesMapAsGrpcDoes) {
  EXPECT_EQ(CodeFromHttpStatus(400), 13);
  EXPECT_EQ(CodeFromHttpStatus(401), 16);
  EXPECT_EQ(CodeFromHttpStatus(403), 7);
  EXPECT_EQ(CodeFromHttpStatus(404), 12);
  EXPECT_EQ(CodeFromHttpStatus(503), 14);
  EXPECT_EQ(CodeFromHttpStatus(500), 2);
}

TEST(GrpcWireTest, PrefixIsReadOnceAllFiveBytesAreThere) {
  EXPECT_FALSE(ReadPrefix(std::string("\0\0\0\x01", 4)).has_value());
  const auto plain = ReadPrefix(Frame(std::string(300, 'x')));
  ASSERT_TRUE(plain.has_value());
  EXPECT_EQ(plain->flags, 0);
  EXPECT_EQ(plain->length, 300u);
  const auto compressed = ReadPrefix(std::string("\x01\xff\0\0\x02", 5));
  ASSERT_TRUE(compressed.has_value());
  EXPECT_EQ(compressed->flags, 1);
  EXPECT_EQ(compressed->length, 0xff000002u);
}

TEST(GrpcWireTest, ProtocolHeadersAreNotMetadata) {
  for (const char* key : {":status", "content-type", "grpc-status", "grpc-message",
                          "grpc-status-details-bin", "grpc-encoding", "grpc-accept-encoding", "te"}) {
    EXPECT_TRUE(IsProtocolHeader(key)) << key;
  }
  EXPECT_FALSE(IsProtocolHeader("x-request-id"));
  EXPECT_FALSE(IsProtocolHeader("trace-bin"));
}

TEST(GrpcWireTest, BinaryHeadersDecodeEitherBase64Alphabet) {
  EXPECT_EQ(DecodeBinaryHeader("AAEC/w=="), std::string("\0\1\2\xff", 4));
  EXPECT_EQ(DecodeBinaryHeader("AAEC/w"), std::string("\0\1\2\xff", 4));
  EXPECT_EQ(DecodeBinaryHeader("AAEC_w"), std::string("\0\1\2\xff", 4));
}

}  // namespace
}  // namespace taskmesh::gateway::grpc_wire
