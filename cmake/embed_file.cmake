# Writes OUT, a C++ source that defines
#   namespace NAMESPACE { extern const char SYMBOL[] = {...}; }
# holding the bytes of IN and a terminating NUL. Run at build time:
#   cmake -DIN=... -DOUT=... -DNAMESPACE=... -DSYMBOL=... -P embed_file.cmake
file(READ ${IN} hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)"
       "\\1\n" bytes "${bytes}")
get_filename_component(name ${IN} NAME)
file(WRITE ${OUT}
     "// Generated at build time from ${name}; not committed.\n"
     "namespace ${NAMESPACE} {\n"
     "extern const char ${SYMBOL}[] = {\n${bytes}0x00};\n"
     "}  // namespace ${NAMESPACE}\n")
