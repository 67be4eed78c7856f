pt_fuzz_target(h1_request DEPS pt_http1)
