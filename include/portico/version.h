/*
 * portico/version.h - ABI version of the plugin interface.
 *
 * A filter type declares the PT_ABI_VERSION it was compiled against; portico
 * refuses to register a type whose major version differs from its own.
 * The major version changes whenever a struct layout or a function signature
 * in include/portico/ changes incompatibly; the minor version when
 * functions are added.
 *   1.2  pt_exchange_identity(), pt_exchange_set_identity() (struct pt_identity)
 *   1.3  pt_exchange_client_cert() (struct pt_client_cert, portico/client_cert.h)
 *   1.4  pt_exchange_identity_get/_count/_item/_has/_set/_add (enum
 *        pt_identity_attr, enum pt_identity_list): subject, client name,
 *        method, claims, scopes, roles; struct pt_identity is unchanged
 */
#ifndef PORTICO_VERSION_H
#define PORTICO_VERSION_H

#define PT_ABI_VERSION_MAJOR 1u
#define PT_ABI_VERSION_MINOR 4u
#define PT_ABI_VERSION ((PT_ABI_VERSION_MAJOR << 16) | PT_ABI_VERSION_MINOR)

#endif
