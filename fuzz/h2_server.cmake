pt_fuzz_target(h2_server DEPS pt_http2)
