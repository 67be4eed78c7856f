pt_fuzz_target(auth_jwt DEPS pt_auth)
