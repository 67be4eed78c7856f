/* Forced into protoc-c's generated test code (see tests.cmake): protoc-c
 * 1.4 prints proto2 float defaults inf/-inf/nan as bare identifiers. */
#define inf __builtin_inf()
#define nan __builtin_nan("")
