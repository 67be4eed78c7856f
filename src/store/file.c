/*
 * The file store: the managed configuration in one state file.
 *
 * Layout (little-endian):
 *
 *   "PTSTATE1"            8 bytes, magic and format version
 *   version               u64, the document version
 *   seed length, seed     u32 + bytes, the tag of the YAML seed
 *   payload length        u32
 *   payload               a packed portico.config.v1.Config (managed sections)
 *   crc32                 u32 over everything before it
 *
 * A commit writes the whole file to "<path>.tmp.<pid>", fsyncs it, renames
 * it over the state file and fsyncs the directory, so a crash at any moment
 * leaves the old file or the new one. A crash between open and rename leaves
 * its temp file behind under the dead process's pid; open removes every
 * "<path>.tmp.*" it finds (one instance owns a state file), so they do not
 * pile up across crashes. A file that fails its checks is never
 * used: load reports it and the operator decides (the gateway does not
 * start on a damaged state rather than silently falling back to the seed).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/arena.h"
#include "store/store_int.h"

#define MAGIC "PTSTATE1"
#define MAX_STATE_BYTES (256u * 1024u * 1024u)
#define MAX_SEED_BYTES 256u

struct file_store {
    struct pt_store base;
    char *path;
    char *seed; /* tag read from the file, or set for the next commit */
    uint64_t version;
};

static uint32_t crc32(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return ~c;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static bool file_connected(const struct pt_store *s)
{
    (void)s;
    return true;
}

/* Status: 0 with *buf and *len (caller frees), 1 when the file does not exist,
 * or PT_ERR_CONFIG. */
static int read_all(const char *path, uint8_t **buf, size_t *len, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 1;
        pt_store_errf(err, errlen, "%s: %s", path, strerror(errno));
        return PT_ERR_CONFIG;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > MAX_STATE_BYTES) {
        pt_store_errf(err, errlen, "%s: not a regular file of at most %u bytes", path,
                      MAX_STATE_BYTES);
        close(fd);
        return PT_ERR_CONFIG;
    }
    size_t n = (size_t)st.st_size, got = 0;
    uint8_t *b = pt_xmalloc(n ? n : 1);
    while (got < n) {
        ssize_t r = read(fd, b + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            pt_store_errf(err, errlen, "%s: read failed: %s", path,
                          r < 0 ? strerror(errno) : "file shrank while reading");
            free(b);
            close(fd);
            return PT_ERR_CONFIG;
        }
        got += (size_t)r;
    }
    close(fd);
    *buf = b;
    *len = n;
    return 0;
}

static int file_load(struct pt_store *st, Portico__Config__V1__Config **managed, uint64_t *version,
                     char *err, size_t errlen)
{
    struct file_store *s = (struct file_store *)st;
    uint8_t *b = NULL;
    size_t n = 0;
    int rc = read_all(s->path, &b, &n, err, errlen);
    if (rc == 1) {
        *managed = pt_store_empty_config();
        *version = 0;
        s->version = 0;
        return 0;
    }
    if (rc < 0)
        return rc;
    size_t off = 0;
    const char *bad = NULL;
    uint32_t seed_len = 0, payload_len = 0;
    if (n < 8 + 8 + 4 + 4 + 4 || memcmp(b, MAGIC, 8) != 0) {
        bad = "not a portico state file (bad magic or too short)";
        goto fail;
    }
    if (crc32(b, n - 4) != get_u32(b + n - 4)) {
        bad = "checksum mismatch (the file is damaged)";
        goto fail;
    }
    off = 8;
    uint64_t v = get_u64(b + off);
    off += 8;
    seed_len = get_u32(b + off);
    off += 4;
    if (seed_len > MAX_SEED_BYTES || off + seed_len + 4 + 4 > n) {
        bad = "seed tag length out of range";
        goto fail;
    }
    char *seed = pt_xmalloc(seed_len + 1);
    memcpy(seed, b + off, seed_len);
    seed[seed_len] = '\0';
    off += seed_len;
    payload_len = get_u32(b + off);
    off += 4;
    if (off + payload_len + 4 != n) {
        free(seed);
        bad = "payload length does not match the file size";
        goto fail;
    }
    Portico__Config__V1__Config *cfg =
        portico__config__v1__config__unpack(NULL, payload_len, b + off);
    if (!cfg) {
        free(seed);
        bad = "payload is not a valid configuration message";
        goto fail;
    }
    free(b);
    free(s->seed);
    s->seed = seed;
    s->version = v;
    *managed = cfg;
    *version = v;
    return 0;
fail:
    pt_store_errf(err, errlen, "%s: %s; move it away to start from the configuration file", s->path,
                  bad);
    free(b);
    return PT_ERR_CONFIG;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int fsync_dir_of(const char *path)
{
    char *copy = pt_xstrdup(path);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(copy);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static int file_commit(struct pt_store *st, const Portico__Config__V1__Config *old,
                       const Portico__Config__V1__Config *next, uint64_t expected_version,
                       char *err, size_t errlen)
{
    (void)old;
    struct file_store *s = (struct file_store *)st;
    if (expected_version != s->version) {
        pt_store_errf(err, errlen, "state is at version %llu, not %llu",
                      (unsigned long long)s->version, (unsigned long long)expected_version);
        return PT_ERR_CONFLICT;
    }
    size_t plen = protobuf_c_message_get_packed_size(&next->base);
    size_t seed_len = s->seed ? strlen(s->seed) : 0;
    if (plen > MAX_STATE_BYTES || seed_len > MAX_SEED_BYTES) {
        pt_store_errf(err, errlen, "configuration too large to store (%zu bytes)", plen);
        return PT_ERR_LIMIT;
    }
    size_t n = 8 + 8 + 4 + seed_len + 4 + plen + 4, off = 0;
    uint8_t *b = pt_xmalloc(n);
    memcpy(b, MAGIC, 8);
    off = 8;
    put_u64(b + off, expected_version + 1);
    off += 8;
    put_u32(b + off, (uint32_t)seed_len);
    off += 4;
    if (seed_len)
        memcpy(b + off, s->seed, seed_len);
    off += seed_len;
    put_u32(b + off, (uint32_t)plen);
    off += 4;
    protobuf_c_message_pack(&next->base, b + off);
    off += plen;
    put_u32(b + off, crc32(b, off));

    size_t tlen = strlen(s->path) + 32;
    char *tmp = pt_xmalloc(tlen);
    snprintf(tmp, tlen, "%s.tmp.%ld", s->path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int rc = PT_ERR_STORE_UNAVAILABLE;
    if (fd < 0) {
        pt_store_errf(err, errlen, "%s: %s", tmp, strerror(errno));
        goto out;
    }
    if (write_all(fd, b, n) != 0 || fsync(fd) != 0) {
        pt_store_errf(err, errlen, "%s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        goto out;
    }
    close(fd);
    if (rename(tmp, s->path) != 0) {
        pt_store_errf(err, errlen, "rename %s -> %s: %s", tmp, s->path, strerror(errno));
        unlink(tmp);
        goto out;
    }
    /* The rename is what makes the new state the state; a failed directory
     * fsync only weakens durability across a power cut, so it is reported
     * through err but the commit stands. */
    if (fsync_dir_of(s->path) != 0)
        pt_store_errf(err, errlen, "fsync of the state directory failed: %s", strerror(errno));
    s->version = expected_version + 1;
    rc = 0;
out:
    free(tmp);
    free(b);
    return rc;
}

static void file_close(struct pt_store *st)
{
    struct file_store *s = (struct file_store *)st;
    free(s->path);
    free(s->seed);
    free(s);
}

static const struct pt_store_ops file_ops = {
    .kind = "file",
    .connected = file_connected,
    .load = file_load,
    .commit = file_commit,
    .close = file_close,
};

/* Remove "<path>.tmp.*" left by commits that a crash interrupted. Best
 * effort: a directory that cannot be read or a file that cannot be removed
 * is logged by the next commit's failure, if it matters at all. */
static void remove_stale_temps(const char *path)
{
    char *dcopy = pt_xstrdup(path), *bcopy = pt_xstrdup(path);
    const char *dir = dirname(dcopy), *base = basename(bcopy);
    size_t plen = strlen(base) + 5;
    char *prefix = pt_xmalloc(plen + 1);
    snprintf(prefix, plen + 1, "%s.tmp.", base);
    DIR *d = opendir(dir);
    if (d) {
        int dfd = dirfd(d);
        struct dirent *de;
        while ((de = readdir(d)) != NULL)
            if (strncmp(de->d_name, prefix, plen) == 0 && de->d_name[plen] != '\0')
                unlinkat(dfd, de->d_name, 0);
        closedir(d);
    }
    free(prefix);
    free(bcopy);
    free(dcopy);
}

struct pt_store *pt_store_file_open(const char *path, char *err, size_t errlen)
{
    if (!path || !*path) {
        pt_store_errf(err, errlen, "state file path is empty");
        return NULL;
    }
    remove_stale_temps(path);
    struct file_store *s = pt_xcalloc(1, sizeof(*s));
    s->base.ops = &file_ops;
    s->path = pt_xstrdup(path);
    return &s->base;
}

int pt_store_file_set_seed(struct pt_store *st, const char *seed)
{
    if (st->ops != &file_ops)
        return PT_ERR_INTERNAL;
    struct file_store *s = (struct file_store *)st;
    if (strlen(seed) > MAX_SEED_BYTES)
        return PT_ERR_LIMIT;
    free(s->seed);
    s->seed = pt_xstrdup(seed);
    return 0;
}

const char *pt_store_file_seed(const struct pt_store *st)
{
    if (st->ops != &file_ops)
        return NULL;
    const struct file_store *s = (const struct file_store *)st;
    return s->seed ? s->seed : "";
}
