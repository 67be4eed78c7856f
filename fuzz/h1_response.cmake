pt_fuzz_target(h1_response DEPS pt_http1)
