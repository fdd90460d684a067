# cmake -DIN=<proto> -DOUT=<proto> -P strip_proto.cmake
#
# Copies one of etcd's protos (Debian's golang-etcd-server-dev) with what
# only Go needs taken out: the gogoproto import and options, and the
# grpc-gateway HTTP annotations. Neither changes the wire format, so the C++
# code generated from the copy speaks etcd's protocol exactly.
file(READ "${IN}" text)
string(REGEX REPLACE "import \"gogoproto/gogo.proto\";" "" text "${text}")
string(REGEX REPLACE "import \"google/api/annotations.proto\";" "" text
       "${text}")
# File options: option (gogoproto.x) = true;
string(REGEX REPLACE "option \\(gogoproto\\.[a-z_]+\\) = [a-z]+;" "" text
       "${text}")
# Field options: [(gogoproto.x) = ..., (gogoproto.y) = ...]
string(REGEX REPLACE "\\[\\(gogoproto[^]]*\\]" "" text "${text}")
# Method options: option (google.api.http) = { ... additional_bindings { ... } };
string(REGEX REPLACE "additional_bindings {[^}]*}" "" text "${text}")
string(REGEX REPLACE "option \\(google\\.api\\.http\\) = {[^}]*};" "" text
       "${text}")
file(WRITE "${OUT}.tmp" "${text}")
file(RENAME "${OUT}.tmp" "${OUT}")
