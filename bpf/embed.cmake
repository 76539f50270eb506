# cmake -DIN=file -DOUT=header -DNAME=symbol -P embed.cmake: the bytes of IN as a C array
# `static const unsigned char NAME[]` in OUT (no xxd needed at build time).
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR bytes "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" body "${body}")
file(WRITE ${OUT} "/* Generated from ${IN} by bpf/embed.cmake. */\nstatic const unsigned char ${NAME}[${bytes}] = {\n${body}\n};\n")
