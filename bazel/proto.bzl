"""tm_proto_library: protoc + the gRPC C++ plugin from Debian, run by Bazel.

Generated code is never committed. The package that calls this macro is an
import root, and so is //protos (for google/api and google/rpc), and so is
/usr/include (for google/protobuf's well-known types, which libprotobuf
already contains and so are not regenerated).

Example:
    tm_proto_library(
        name = "taskmesh_proto",
        srcs = ["taskmesh/v1/tasks.proto"],
    )
gives the cc_library `:taskmesh_proto` (messages and gRPC stubs) and the
file `taskmesh_proto.descriptor_set.pb` (all imports, with comments).
"""

def tm_proto_library(name, srcs, proto_deps = [], deps = [], visibility = None, testonly = False):
    """Compiles `srcs` (paths relative to this package) to C++ and gRPC stubs.

    Args:
      name: name of the resulting cc_library.
      srcs: .proto files of this package, relative to it.
      proto_deps: filegroups of .proto files in other packages that srcs import.
      deps: cc_library targets generated from proto_deps.
      visibility: visibility of the cc_library and descriptor set.
      testonly: as for any rule.
    """
    pkg = native.package_name()
    bases = [s[:-len(".proto")] for s in srcs]
    outs = []
    for b in bases:
        outs += [b + ".pb.h", b + ".pb.cc", b + ".grpc.pb.h", b + ".grpc.pb.cc"]
    descriptor_set = name + ".descriptor_set.pb"
    roots = ["-I" + pkg]
    if pkg != "protos":
        roots.append("-Iprotos")
    roots.append("-I/usr/include")

    native.genrule(
        name = name + "_gen",
        srcs = srcs + proto_deps,
        outs = outs + [descriptor_set],
        cmd = " ".join([
            "/usr/bin/protoc",
            " ".join(roots),
            "--cpp_out=$(GENDIR)/" + pkg,
            "--grpc_out=$(GENDIR)/" + pkg,
            "--plugin=protoc-gen-grpc=/usr/bin/grpc_cpp_plugin",
            "--include_imports",
            "--include_source_info",
            "--descriptor_set_out=$(location " + descriptor_set + ")",
            " ".join([pkg + "/" + s for s in srcs]),
        ]),
        testonly = testonly,
        visibility = visibility,
    )

    native.cc_library(
        name = name,
        srcs = [o for o in outs if o.endswith(".cc")],
        hdrs = [o for o in outs if o.endswith(".h")],
        includes = ["."],
        deps = deps + ["//bazel/system:grpc"],
        testonly = testonly,
        visibility = visibility,
    )
