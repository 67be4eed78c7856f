pt_unit_test(grpc grpc DEPS pt_grpc)
pt_unit_test(grpc grpcweb DEPS pt_grpc)
