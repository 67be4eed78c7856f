pt_unit_test(grpc grpc DEPS pt_grpc)
