# Route matching with a large table, trie against the linear reference.
add_executable(bench_route_match ${CMAKE_CURRENT_SOURCE_DIR}/route_match.c)
target_link_libraries(bench_route_match PRIVATE pt_route)
