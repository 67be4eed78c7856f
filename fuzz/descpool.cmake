pt_fuzz_target(descpool DEPS pt_transcode)
