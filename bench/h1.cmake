# bench_h1_parse: HTTP/1 request parsing cost (see bench/h1_parse.c). It
# compares against libhttp-parser, so it is built only where that is installed
# (libhttp-parser-dev; bench/run.sh installs it).
if(HTTP_PARSER_LIB)
  add_executable(bench_h1_parse ${CMAKE_CURRENT_SOURCE_DIR}/h1_parse.c)
  target_link_libraries(bench_h1_parse PRIVATE pt_http1 ${HTTP_PARSER_LIB})
endif()
