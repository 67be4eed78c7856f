# bench_backend: the fast HTTP/1.1 + h2c (+ gRPC-shaped) backend that
# bench/bench.py puts behind nginx, HAProxy and portico (see bench/backend.c).
add_executable(bench_backend ${CMAKE_CURRENT_SOURCE_DIR}/backend.c)
target_link_libraries(bench_backend PRIVATE PkgConfig::LIBEVENT PkgConfig::NGHTTP2)
