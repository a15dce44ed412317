/*
 * A stand-in for the vendor's libkvm.so, for host tests only: the same symbols and the
 * documented behaviours (ffi/include/kvm_vision.h), without any hardware. Built by the tests
 * with the system C compiler (nanokvm_ffi::mock), never by the normal build.
 *
 * What it models:
 *   - the ring of 4 output buffers: each read mallocs into the next slot; a slot still held by
 *     the caller makes the read fail with -3 (IMG_BUFFER_FULL), as the real library does;
 *   - free_kvmv_data: frees a buffer it handed out and returns its type, -1 for anything else;
 *   - H.264: an IDR (3) after init, after set_h264_gop, after a change of output size or
 *     bitrate, after an MJPEG read, after CVI_VENC_RequestIDR (mock libvenc), and every GOP
 *     frames; P-frames (4) otherwise;
 *   - output size: width/height 0,0 follow the input, anything else is "scaled" to that size;
 *   - no signal: reads return -1 and kvmv_hdmi_signal_active() 0; an input resolution change
 *     answers -4 for a number of reads first;
 *   - any result scripted by a test (every error code, 5 = unchanged).
 *
 * Frames: with a recording (mock_set_stream, or a file "mock_stream.h264" next to this
 * library, read at kvmv_init) it serves the recording's access units in a loop, jumping to the
 * next IDR when one is due, so a viewer can decode them. Without one, an IDR is a real SPS
 * (carrying the output size) + PPS + a dummy slice, and a P-frame a dummy slice.
 *
 * Tests look up the mock_* functions for control and statistics. At kvmv_deinit the counters
 * are written to "mock_stats.txt" next to this library, for tests that run the daemon.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RING 4
#define SCRIPT_MAX 64

/* Takes a pending CVI_VENC_RequestIDR from the mock libvenc.so next to this library, if the
 * caller loaded it (found by path, so parallel tests with their own copies stay apart). */
static int (*venc_take_request)(void);
static void sibling_path(const char *name, char *out, size_t size);

static int take_idr_request(void)
{
    if (!venc_take_request) {
        char path[4096];
        sibling_path("libvenc.so", path, sizeof path);
        void *venc = path[0] ? dlopen(path, RTLD_NOW | RTLD_NOLOAD) : NULL;
        if (!venc)
            return 0;
        venc_take_request = (int (*)(void))dlsym(venc, "mock_venc_take_request");
        dlclose(venc); /* the caller's handle keeps it loaded */
        if (!venc_take_request)
            return 0;
    }
    return venc_take_request();
}

struct mock_counts {
    long reads;        /* kvmv_read_img calls */
    long buffers;      /* buffers handed out */
    long frees;        /* buffers given back through free_kvmv_data */
    long bad_frees;    /* free_kvmv_data with a pointer that was not handed out */
    long held;         /* buffers handed out and not freed */
    long gop_sets;     /* set_h264_gop calls */
    long idrs;         /* IDR frames returned */
    long inits;
    long deinits;
    long freed_at_deinit; /* buffers the caller never freed, released by kvmv_deinit */
};

static struct {
    uint8_t *data;
    int type;
} ring[RING];
static int ring_index;

static struct mock_counts counts;
static int script[SCRIPT_MAX];
static int script_len, script_pos;

static int signal_present = 1;
static int capture_enabled = 1;
static int changing_reads;
static uint16_t input_w = 1920, input_h = 1080;

static int enc_running;
static uint16_t enc_w, enc_h, enc_bitrate;
static int gop = 30, frames_since_idr;
static int last_type = -1;
static int frame_detect;

/* The recording: the whole file and where each access unit starts and ends. */
static uint8_t *stream;
static size_t stream_len;
static size_t *au_start, *au_end;
static int *au_key;
static int au_count, au_next;

/* ---- H.264 bits ---------------------------------------------------------------------- */

struct bits {
    uint8_t buf[64];
    int bit;
};

static void put_bit(struct bits *b, int v)
{
    if (v)
        b->buf[b->bit / 8] |= (uint8_t)(0x80 >> (b->bit % 8));
    b->bit++;
}

static void put_bits(struct bits *b, unsigned v, int n)
{
    while (n--)
        put_bit(b, (v >> n) & 1);
}

static void put_ue(struct bits *b, unsigned v)
{
    unsigned x = v + 1;
    int len = 0;
    while ((x >> len) > 1)
        len++;
    put_bits(b, 0, len);
    put_bits(b, x, len + 1);
}

/* A Constrained Baseline SPS for a w x h picture (cropped from whole macroblocks). */
static size_t write_sps(uint8_t *out, uint16_t w, uint16_t h)
{
    struct bits b;
    memset(&b, 0, sizeof b);
    unsigned mbs_w = (w + 15u) / 16u, mbs_h = (h + 15u) / 16u;
    put_bits(&b, 0x67, 8);       /* NAL header: SPS */
    put_bits(&b, 66, 8);         /* profile_idc: Baseline */
    put_bits(&b, 0xc0, 8);       /* constraint_set0/1 */
    put_bits(&b, 40, 8);         /* level_idc 4.0 */
    put_ue(&b, 0);               /* seq_parameter_set_id */
    put_ue(&b, 0);               /* log2_max_frame_num_minus4 */
    put_ue(&b, 2);               /* pic_order_cnt_type */
    put_ue(&b, 1);               /* max_num_ref_frames */
    put_bit(&b, 0);              /* gaps_in_frame_num_value_allowed_flag */
    put_ue(&b, mbs_w - 1);
    put_ue(&b, mbs_h - 1);
    put_bit(&b, 1);              /* frame_mbs_only_flag */
    put_bit(&b, 1);              /* direct_8x8_inference_flag */
    int crop = (mbs_w * 16 != w) || (mbs_h * 16 != h);
    put_bit(&b, crop);
    if (crop) {
        put_ue(&b, 0);
        put_ue(&b, (mbs_w * 16 - w) / 2);
        put_ue(&b, 0);
        put_ue(&b, (mbs_h * 16 - h) / 2);
    }
    put_bit(&b, 0);              /* vui_parameters_present_flag */
    put_bit(&b, 1);              /* rbsp_stop_one_bit */
    size_t n = (size_t)(b.bit + 7) / 8;
    memcpy(out, b.buf, n);
    return n;
}

static const uint8_t start_code[4] = {0, 0, 0, 1};
static const uint8_t pps[4] = {0x68, 0xce, 0x3c, 0x80};

/* ---- the recording --------------------------------------------------------------------- */

static int nal_type_at(size_t i) { return stream[i] & 0x1f; }

static void drop_stream(void)
{
    free(stream);
    free(au_start);
    free(au_end);
    free(au_key);
    stream = NULL;
    au_start = au_end = NULL;
    au_key = NULL;
    stream_len = 0;
    au_count = au_next = 0;
}

/* Splits an Annex-B byte stream into access units: a new unit starts at an SPS, a PPS or
 * SEI/AUD not preceded by an SPS, or a slice that follows a slice. */
static int index_stream(void)
{
    size_t cap = 64;
    au_start = malloc(cap * sizeof *au_start);
    au_end = malloc(cap * sizeof *au_end);
    au_key = malloc(cap * sizeof *au_key);
    if (!au_start || !au_end || !au_key)
        return -1;
    int prev_was_slice = 1; /* the first NAL starts a unit */
    for (size_t i = 0; i + 3 < stream_len; i++) {
        if (!(stream[i] == 0 && stream[i + 1] == 0 && stream[i + 2] == 1))
            continue;
        size_t code_at = (i > 0 && stream[i - 1] == 0) ? i - 1 : i;
        int type = nal_type_at(i + 3);
        int is_slice = type == 1 || type == 5;
        int starts = is_slice ? prev_was_slice : (prev_was_slice || type == 7);
        if (type == 8 || type == 6 || type == 9)
            starts = prev_was_slice;
        if (starts) {
            if (au_count > 0)
                au_end[au_count - 1] = code_at;
            if ((size_t)au_count == cap) {
                cap *= 2;
                au_start = realloc(au_start, cap * sizeof *au_start);
                au_end = realloc(au_end, cap * sizeof *au_end);
                au_key = realloc(au_key, cap * sizeof *au_key);
                if (!au_start || !au_end || !au_key)
                    return -1;
            }
            au_start[au_count] = code_at;
            au_key[au_count] = 0;
            au_count++;
        }
        if (type == 5 && au_count > 0)
            au_key[au_count - 1] = 1;
        prev_was_slice = is_slice;
        i += 2;
    }
    if (au_count == 0)
        return -1;
    au_end[au_count - 1] = stream_len;
    return 0;
}

int mock_set_stream(const char *path)
{
    drop_stream();
    if (path == NULL)
        return 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    stream = malloc(len > 0 ? (size_t)len : 1);
    stream_len = stream && len > 0 ? fread(stream, 1, (size_t)len, f) : 0;
    fclose(f);
    if (stream_len == 0 || index_stream() != 0) {
        drop_stream();
        return -1;
    }
    for (au_next = 0; au_next < au_count && !au_key[au_next]; au_next++)
        ;
    if (au_next == au_count) {
        drop_stream();
        return -1;
    }
    return au_count;
}

/* A file next to this library, so a daemon started by a test needs no extra setup. */
static void sibling_path(const char *name, char *out, size_t size)
{
    Dl_info info;
    out[0] = 0;
    if (!dladdr((void *)&sibling_path, &info) || !info.dli_fname)
        return;
    const char *slash = strrchr(info.dli_fname, '/');
    if (!slash)
        return;
    snprintf(out, size, "%.*s/%s", (int)(slash - info.dli_fname), info.dli_fname, name);
}

/* ---- the C API -------------------------------------------------------------------------- */

void kvmv_init(uint8_t debug_en)
{
    (void)debug_en;
    counts.inits++;
    memset(ring, 0, sizeof ring);
    ring_index = 0;
    enc_running = 0;
    char path[4096];
    sibling_path("mock_stream.h264", path, sizeof path);
    if (path[0] && stream == NULL) {
        FILE *f = fopen(path, "rb");
        if (f) {
            fclose(f);
            mock_set_stream(path);
        }
    }
}

static void write_stats(void)
{
    char path[4096];
    sibling_path("mock_stats.txt", path, sizeof path);
    if (!path[0])
        return;
    FILE *f = fopen(path, "w");
    if (!f)
        return;
    fprintf(f,
            "reads %ld\nbuffers %ld\nfrees %ld\nbad_frees %ld\nheld %ld\ngop_sets %ld\n"
            "idrs %ld\ninits %ld\ndeinits %ld\nfreed_at_deinit %ld\n",
            counts.reads, counts.buffers, counts.frees, counts.bad_frees, counts.held,
            counts.gop_sets, counts.idrs, counts.inits, counts.deinits, counts.freed_at_deinit);
    fclose(f);
}

void free_all_kvmv_data(void)
{
    for (int i = 0; i < RING; i++) {
        if (ring[i].data) {
            free(ring[i].data);
            ring[i].data = NULL;
            counts.held--;
            counts.freed_at_deinit++;
        }
    }
}

void kvmv_deinit(void)
{
    counts.deinits++;
    free_all_kvmv_data();
    enc_running = 0;
    write_stats();
}

static uint8_t *claim_slot(int type, size_t size)
{
    ring_index = (ring_index + 1) % RING;
    if (ring[ring_index].data != NULL)
        return NULL;
    uint8_t *p = malloc(size ? size : 1);
    if (!p)
        return NULL;
    ring[ring_index].data = p;
    ring[ring_index].type = type;
    counts.buffers++;
    counts.held++;
    return p;
}

/* The next H.264 frame: from the recording, or synthetic. Returns 3 or 4, or -3. */
static int h264_frame(int want_idr, uint16_t w, uint16_t h, uint8_t **pp, uint32_t *p_size)
{
    int idx = -1;
    int key = want_idr;
    size_t size;
    if (stream) {
        idx = au_next;
        if (want_idr)
            while (!au_key[idx])
                idx = (idx + 1) % au_count;
        key = au_key[idx];
        size = au_end[idx] - au_start[idx];
    } else {
        size = key ? 4 + 64 + 4 + sizeof pps + 4 + 8 : 4 + 8;
    }
    uint8_t *p = claim_slot(key ? 3 : 4, size);
    if (!p)
        return -3;
    if (stream) {
        memcpy(p, stream + au_start[idx], size);
        au_next = (idx + 1) % au_count;
    } else {
        size_t n = 0;
        if (key) {
            memcpy(p + n, start_code, 4);
            n += 4;
            n += write_sps(p + n, w, h);
            memcpy(p + n, start_code, 4);
            n += 4;
            memcpy(p + n, pps, sizeof pps);
            n += sizeof pps;
        }
        static const uint8_t idr_slice[8] = {0x65, 0x88, 0x84, 0x00, 0x33, 0xff, 0x12, 0x80};
        static const uint8_t p_slice[8] = {0x41, 0x9a, 0x02, 0x00, 0x10, 0x20, 0x30, 0x80};
        memcpy(p + n, start_code, 4);
        n += 4;
        memcpy(p + n, key ? idr_slice : p_slice, 8);
        n += 8;
        size = n;
    }
    ring[ring_index].type = key ? 3 : 4;
    *pp = p;
    *p_size = (uint32_t)size;
    if (key) {
        counts.idrs++;
        frames_since_idr = 1;
    } else {
        frames_since_idr++;
    }
    return key ? 3 : 4;
}

static int jpeg_frame(uint8_t **pp, uint32_t *p_size)
{
    static const uint8_t jpeg[] = {0xff, 0xd8, 0xff, 0xe0, 0, 4, 'J', 'F', 0xff, 0xd9};
    uint8_t *p = claim_slot(0, sizeof jpeg);
    if (!p)
        return -3;
    memcpy(p, jpeg, sizeof jpeg);
    *pp = p;
    *p_size = sizeof jpeg;
    return 0;
}

int kvmv_read_img(uint16_t width, uint16_t height, uint8_t type, uint16_t qlty,
                  uint8_t **pp_data, uint32_t *p_size)
{
    counts.reads++;
    int pending_request = take_idr_request();
    if (script_pos < script_len) {
        int code = script[script_pos++];
        if (code == 0 || code == 3 || code == 4) {
            /* A scripted frame kind: produced like a real one. */
            if (code == 0)
                return jpeg_frame(pp_data, p_size);
            return h264_frame(code == 3, width ? width : input_w, height ? height : input_h,
                              pp_data, p_size);
        }
        return code;
    }
    if (!capture_enabled || !signal_present)
        return -1;
    if (changing_reads > 0) {
        changing_reads--;
        return -4;
    }
    uint16_t w = width && height ? width : input_w;
    uint16_t h = width && height ? height : input_h;
    if (type == 0) {
        last_type = 0;
        enc_running = 0; /* leaving H.264 resets its encoder */
        return jpeg_frame(pp_data, p_size);
    }
    if (type != 1)
        return -2;
    if (qlty < 500)
        qlty = 500;
    if (qlty > 10000)
        qlty = 10000;
    int want_idr = 0;
    if (!enc_running || enc_w != w || enc_h != h || enc_bitrate != qlty) {
        enc_running = 1;
        enc_w = w;
        enc_h = h;
        enc_bitrate = qlty;
        want_idr = 1;
    }
    if (pending_request || frames_since_idr >= gop)
        want_idr = 1;
    last_type = 1;
    return h264_frame(want_idr, w, h, pp_data, p_size);
}

int free_kvmv_data(uint8_t **pp_data)
{
    if (pp_data == NULL) {
        counts.bad_frees++;
        return -1;
    }
    for (int i = 0; i < RING; i++) {
        if (ring[i].data != NULL && ring[i].data == *pp_data) {
            free(ring[i].data);
            ring[i].data = NULL;
            counts.frees++;
            counts.held--;
            return ring[i].type;
        }
    }
    counts.bad_frees++;
    return -1;
}

void set_h264_gop(uint8_t g)
{
    counts.gop_sets++;
    gop = g < 1 ? 1 : g > 100 ? 100 : g;
    enc_running = 0;
}

void set_frame_detact(uint8_t n) { frame_detect = n > 100 ? 100 : n; }

void set_venc_auto_recyc(uint8_t en) { (void)en; }

uint8_t kvmv_hdmi_control(uint8_t en)
{
    capture_enabled = en != 0;
    return (uint8_t)-1; /* not the PCIe board: no hardware control */
}

uint8_t kvmv_hdmi_signal_active(void) { return capture_enabled && signal_present; }

/* ---- control and statistics, for tests ------------------------------------------------ */

void mock_counts(struct mock_counts *out) { *out = counts; }

/* The next n reads return these codes (0, 3, 4 produce that kind of frame). */
void mock_script(const int *codes, int n)
{
    if (n > SCRIPT_MAX)
        n = SCRIPT_MAX;
    memcpy(script, codes, (size_t)n * sizeof *codes);
    script_len = n;
    script_pos = 0;
}

void mock_set_signal(int present) { signal_present = present != 0; }

/* The input changes to w x h; the next `probing` reads answer -4 while it is "detected". */
void mock_set_input(uint16_t w, uint16_t h, int probing)
{
    input_w = w;
    input_h = h;
    changing_reads = probing;
    enc_running = 0; /* the camera restarts */
}

int mock_gop(void) { return gop; }
int mock_frame_detect(void) { return frame_detect; }
