# cmake -DIN=file -DOUT=file.c -DSYMBOL=name -P embed.cmake
# Writes `const unsigned char SYMBOL[]` and `const size_t SYMBOL_len` holding
# the bytes of IN.
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
string(REGEX REPLACE "((0x..,){16})" "\\1\n" body "${body}")
file(WRITE ${OUT} "/* Generated from ${IN} by proto/embed.cmake. */\n#include <stddef.h>\n"
     "const unsigned char ${SYMBOL}[] = {\n${body}\n};\n"
     "const size_t ${SYMBOL}_len = ${len};\n")
