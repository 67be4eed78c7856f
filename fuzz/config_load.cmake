pt_fuzz_target(config_load DEPS pt_conf)
