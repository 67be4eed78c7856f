pt_fuzz_target(path_normalize DEPS pt_http pt_core)
