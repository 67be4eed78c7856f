# bench_json_codec: the proto3 JSON codec's throughput (see bench/json_codec.c).
# It uses the codec's test schema, built with the tests (PORTICO_TESTS=ON).
if(TARGET pt_test_json)
  add_executable(bench_json_codec ${CMAKE_CURRENT_SOURCE_DIR}/json_codec.c)
  target_link_libraries(bench_json_codec PRIVATE pt_test_json PkgConfig::JANSSON)
endif()
