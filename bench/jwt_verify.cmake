# bench_jwt_verify: JWT verifications per second (HS256, RS256, ES256) and
# the cost of a verified-token cache hit (see bench/jwt_verify.c).
add_executable(bench_jwt_verify ${CMAKE_CURRENT_SOURCE_DIR}/jwt_verify.c)
target_link_libraries(bench_jwt_verify PRIVATE pt_auth)
