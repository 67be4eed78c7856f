pt_unit_test(ratelimit algo DEPS pt_ratelimit)
pt_unit_test(ratelimit key DEPS pt_ratelimit)
pt_unit_test(ratelimit table DEPS pt_ratelimit)
# Not a test: algo.c as a line-oriented tool, next to the portico binary, for
# tests/integration/test_ratelimit.py (the Redis script against algo.c).
add_executable(rl_reference ${CMAKE_CURRENT_LIST_DIR}/rl_reference.c)
target_link_libraries(rl_reference PRIVATE pt_ratelimit)
set_target_properties(rl_reference PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
