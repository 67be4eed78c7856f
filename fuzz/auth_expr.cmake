pt_fuzz_target(auth_expr DEPS pt_auth pt_core)
