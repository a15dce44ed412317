/*
 * A stand-in for the vendor's libkvm.so, for host tests only: the same symbols and behaviours
 * as one generation of the real library, without any hardware. Built by the tests with the
 * system C compiler (nanokvm_ffi::mock) and, for qemu, by xtask; never by the normal build.
 * Plain C99 plus POSIX and Linux's prctl, so cc and zig cc both compile it.
 *
 * The generation is chosen with -DMOCK_GEN=N (25 when not given):
 *   13  v1.3.0: no kvmv_hdmi_control; an IDR read returns the slice alone, its SPS and PPS are
 *       lent by kvmv_get_sps_frame / kvmv_get_pps_frame until the IDR's buffer is freed.
 *   22  2.1.6 .. 2.2.1: as 13 plus kvmv_hdmi_control. No -5/-6/-7 (added for 2.2.2).
 *   25  2.2.3 .. 2.5.0, the released set: set_frame_detact, set_venc_auto_recyc; an IDR is
 *       SPS + PPS + slice in one buffer; -6 for an input on the unsupported list, -7 when
 *       detection gives up on an unknown one.
 *   26  the untagged library after 2.5.0: as 25 plus kvmv_hdmi_signal_active, and HDMI
 *       capture starts disabled: the signal reads 0 until kvmv_hdmi_control(1).
 * (Facts: support/sg2002/additional/kvm/src/kvm_vision.cpp in sipeed/NanoKVM and its
 * history; the symbol sets from readelf on server/dl_lib/libkvm.so at each release tag.)
 *
 * What it models, as the library does it:
 *   - the ring of 4 output buffers: each read claims the next slot; a slot still held by the
 *     caller makes the read fail with -3;
 *   - free_kvmv_data: frees a buffer it handed out and returns its type, -1 for anything else;
 *   - the H.264 encoder: created on the first H.264 read and again after set_h264_gop, a new
 *     output size or bitrate (each time the next frame is an IDR), an IDR every GOP frames,
 *     CVI_VENC_RequestIDR (mock libvenc) makes the next frame an IDR;
 *   - the encoder wait: when the encoder's output does not come (mock_venc_timeouts) the read
 *     returns -1 and the channel is deleted, so the next frame comes from a new encoder (IDR);
 *   - the MJPEG/H.264 switch as written: leaving H.264 marks the encoder for re-creation,
 *     but coming back from MJPEG marks it initialised again (so the old one goes on without
 *     an IDR, or, with set_venc_auto_recyc(1), its deleted channel fails one read with -1);
 *   - rate control: the encoder is configured for 60 fps whatever rate frames are pulled at,
 *     so each frame gets a 60th of a second's bits; pulled at N fps the stream carries
 *     bitrate x N / 60 (mock_effective_kbps), and synthetic frames have that budget's size;
 *   - the video processor's output is 64-pixel aligned in width, and the camera copies each
 *     row back to the asked width (maix_camera_mmf.hpp), so the picture is exactly the asked
 *     size; mock_vpss_width reports the aligned width;
 *   - clamps: GOP 1..100, bitrate 500..10000 kbit/s, JPEG quality 51..99, frame detect 0..100;
 *   - input: width/height 0,0 follow it; a change answers -4 for a number of reads;
 *   - the PCIe board (mock_set_board('p')): kvmv_hdmi_control drives the receiver's enable
 *     line and answers 0; disabled, no picture comes (-1). Elsewhere it answers 255 and, in
 *     generation 26, only sets the capture flag.
 *
 * Frames: with a recording (mock_set_stream, or a file "mock_stream.h264" next to this
 * library, read at kvmv_init) it serves the recording's access units in a loop, jumping to the
 * next IDR when one is due, so a viewer can decode them. Without one, an IDR is a real SPS
 * (carrying the output size) + PPS + a dummy slice, and a P-frame a dummy slice.
 *
 * Tests look up the mock_* functions for control and statistics, and the calls in order
 * (mock_calls: name, argument, time, thread). At kvmv_deinit the counters are written to
 * "mock_stats.txt" and the calls to "mock_calls.txt" next to this library, for tests that run
 * the daemon.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#ifndef MOCK_GEN
#define MOCK_GEN 25
#endif
#if MOCK_GEN != 13 && MOCK_GEN != 22 && MOCK_GEN != 25 && MOCK_GEN != 26
#error "MOCK_GEN must be 13, 22, 25 or 26"
#endif

#define HAS_HDMI_CONTROL (MOCK_GEN >= 22)
#define SPLIT_PARAMETER_SETS (MOCK_GEN <= 22)
#define HAS_RESOLUTION_ERRORS (MOCK_GEN >= 25)
#define HAS_CAPTURE_FLAG (MOCK_GEN >= 26)

#define RING 4
#define SCRIPT_MAX 64
#define CALLS_MAX 256
#define PULL_WINDOW 16
#define VPSS_ALIGN 64
#define ENCODER_FPS 60

#define TYPE_MJPEG 0
#define TYPE_H264 1

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

/* Appended to, never reordered: nanokvm_ffi::mock::Counts mirrors it. */
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
    long encoders;        /* H.264 encoder channels created */
    long venc_timeouts;   /* reads that failed waiting for the encoder's output */
    long reads_before_init; /* kvmv_read_img before kvmv_init or after kvmv_deinit */
};

static struct {
    uint8_t *data;
    int type;
} ring[RING];
static int ring_index;
/* Generations 13 and 22: an IDR's parameter sets, freed with the IDR's buffer. */
static uint8_t *sps_buf, *pps_buf;
static uint32_t sps_len, pps_len;

static struct mock_counts counts;
static int initialised;

/* A scripted read: `code` returned as is, or (frame) produced like a real frame of that kind,
 * or (raw) with a buffer or none and any size reported. */
enum script_kind { SCRIPT_CODE, SCRIPT_RAW };
static struct {
    int code;
    enum script_kind kind;
    int with_buffer;
    uint32_t size;
} script[SCRIPT_MAX];
static int script_len, script_pos;

static int signal_present = 1;
static char board; /* the first character of /etc/kvm/hw; 'p' = PCIe */
static int receiver_on = 1; /* PCIe: the HDMI receiver's enable line */
#if HAS_CAPTURE_FLAG
static int capture_enabled; /* starts disabled in this generation */
#endif
static int probing_reads;
static uint16_t input_w = 1920, input_h = 1080;
enum input_kind { INPUT_SUPPORTED, INPUT_UNSUPPORTED, INPUT_UNKNOWN };
static enum input_kind input_kind = INPUT_SUPPORTED;

/* The encoder, as kvm_vision.cpp keeps it. venc_type starts 0 (MJPEG): a zeroed global. */
static int venc_type = TYPE_MJPEG;
static int enc_init;        /* kvm_venc.enc_h264_init */
static int enc_channel;     /* the VENC channel exists */
static uint16_t enc_w, enc_h, enc_bitrate;
static int gop = 30, frames_since_idr;
static int auto_recyc;
static int venc_timeouts_pending;
static int frame_detect;
static int jpeg_quality;
static uint16_t vpss_width, out_w, out_h;

/* Pull rate: when the last H.264 reads happened. */
static int64_t pulls[PULL_WINDOW];
static int pull_count;
static int64_t manual_now_us = -1;

static struct {
    char name[24];
    int arg;
    int64_t at_us;
    long repeat;
    char thread[17]; /* a thread name has at most 15 characters */
} calls[CALLS_MAX];
static int call_count;

/* The recording: the whole file and where each access unit starts and ends. */
static uint8_t *stream;
static size_t stream_len;
static size_t *au_start, *au_end;
static int *au_key;
static int au_count, au_next;

/* ---- time and the call log --------------------------------------------------------------- */

static int64_t now_us(void)
{
    if (manual_now_us >= 0)
        return manual_now_us;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Records a call; a run of reads of one type is one entry with a count. Frees, the 2.2.x
 * parameter-set getters and signal queries go with the reads and are not recorded. When the
 * log is full the newest call replaces the last entry, so kvmv_deinit is always there. */
static void log_call(const char *name, int arg, int collapse)
{
    if (collapse && call_count > 0) {
        int last = call_count - 1;
        if (strcmp(calls[last].name, name) == 0 && calls[last].arg == arg) {
            calls[last].repeat++;
            return;
        }
    }
    if (call_count == CALLS_MAX)
        call_count--;
    int i = call_count++;
    snprintf(calls[i].name, sizeof calls[i].name, "%s", name);
    calls[i].arg = arg;
    calls[i].at_us = now_us();
    calls[i].repeat = 1;
    char thread[17] = {0};
    if (prctl(PR_GET_NAME, thread, 0, 0, 0) != 0)
        snprintf(thread, sizeof thread, "?");
    snprintf(calls[i].thread, sizeof calls[i].thread, "%s", thread);
}

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
static const uint8_t idr_slice[8] = {0x65, 0x88, 0x84, 0x00, 0x33, 0xff, 0x12, 0x80};
static const uint8_t p_slice[8] = {0x41, 0x9a, 0x02, 0x00, 0x10, 0x20, 0x30, 0x80};

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

/* ---- buffers ----------------------------------------------------------------------------- */

static void free_parameter_sets(void)
{
    free(sps_buf);
    free(pps_buf);
    sps_buf = pps_buf = NULL;
    sps_len = pps_len = 0;
}

/* The next ring slot, as get_save_buffer: the index moves on even when the slot is taken. */
static int next_slot(void)
{
    ring_index = (ring_index + 1) % RING;
    return ring[ring_index].data == NULL ? ring_index : -1;
}

static uint8_t *fill_slot(int slot, int type, size_t size)
{
    uint8_t *p = malloc(size ? size : 1);
    if (!p)
        return NULL;
    ring[slot].data = p;
    ring[slot].type = type;
    counts.buffers++;
    counts.held++;
    return p;
}

/* ---- the C API -------------------------------------------------------------------------- */

void kvmv_init(uint8_t debug_en)
{
    log_call("kvmv_init", debug_en, 0);
    counts.inits++;
    initialised = 1;
    memset(ring, 0, sizeof ring); /* as the library does: pointers forgotten, not freed */
    ring_index = 0;
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
            "idrs %ld\ninits %ld\ndeinits %ld\nfreed_at_deinit %ld\nencoders %ld\n"
            "venc_timeouts %ld\nreads_before_init %ld\n",
            counts.reads, counts.buffers, counts.frees, counts.bad_frees, counts.held,
            counts.gop_sets, counts.idrs, counts.inits, counts.deinits, counts.freed_at_deinit,
            counts.encoders, counts.venc_timeouts, counts.reads_before_init);
    fclose(f);
}

int mock_calls(char *out, int size);

static void write_calls(void)
{
    char path[4096];
    sibling_path("mock_calls.txt", path, sizeof path);
    if (!path[0])
        return;
    int need = mock_calls(NULL, 0);
    char *text = malloc((size_t)need + 1);
    if (!text)
        return;
    mock_calls(text, need + 1);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
    free(text);
}

static void release_all(void)
{
    for (int i = 0; i < RING; i++) {
        if (ring[i].data) {
            free(ring[i].data);
            ring[i].data = NULL;
            counts.held--;
            counts.freed_at_deinit++;
        }
    }
    free_parameter_sets();
}

void free_all_kvmv_data(void)
{
    log_call("free_all_kvmv_data", -1, 0);
    release_all();
}

void kvmv_deinit(void)
{
    log_call("kvmv_deinit", -1, 0);
    counts.deinits++;
    initialised = 0;
#if HAS_CAPTURE_FLAG
    capture_enabled = 0;
#endif
    enc_init = 0;
    enc_channel = 0;
    release_all();
    write_stats();
    write_calls();
}

static void note_pull(void)
{
    if (pull_count == PULL_WINDOW) {
        memmove(pulls, pulls + 1, (PULL_WINDOW - 1) * sizeof *pulls);
        pull_count--;
    }
    pulls[pull_count++] = now_us();
}

/* Bytes one frame gets from a CBR encoder configured for 60 fps (0 before the first one). */
static size_t frame_budget(void)
{
    return (size_t)enc_bitrate * 1000 / 8 / ENCODER_FPS;
}

/* A dummy slice of `size` bytes (at least its 8 header bytes), never containing 00 00. */
static size_t write_slice(uint8_t *p, const uint8_t header[8], size_t size)
{
    memcpy(p, header, 8);
    if (size > 8)
        memset(p + 8, 0x5a, size - 8);
    return size > 8 ? size : 8;
}

/* Splits an access unit of the recording into SPS, PPS and the rest (generations 13, 22). */
static int split_recorded_idr(const uint8_t *au, size_t len, size_t *rest_at)
{
    size_t i = 0, unit = 0;
    int unit_type = -1;
    *rest_at = 0;
    while (i <= len) {
        int boundary = i == len || (i + 3 <= len && au[i] == 0 && au[i + 1] == 0 &&
                                    (au[i + 2] == 1 || (i + 3 < len && au[i + 2] == 0 &&
                                                        au[i + 3] == 1)));
        if (boundary) {
            if (unit_type == 7 || unit_type == 8) {
                uint8_t *copy = malloc(i - unit);
                if (!copy)
                    return -1;
                memcpy(copy, au + unit, i - unit);
                if (unit_type == 7) {
                    free(sps_buf);
                    sps_buf = copy;
                    sps_len = (uint32_t)(i - unit);
                } else {
                    free(pps_buf);
                    pps_buf = copy;
                    pps_len = (uint32_t)(i - unit);
                }
                *rest_at = i;
            }
            if (i == len)
                break;
            unit = i;
            size_t header = au[i + 2] == 1 ? i + 3 : i + 4;
            unit_type = header < len ? au[header] & 0x1f : -1;
            i = header;
            continue;
        }
        i++;
    }
    return sps_buf && pps_buf ? 0 : -1;
}

/* The next H.264 frame into a claimed slot: from the recording, or synthetic. Returns 3 or 4,
 * or -3 (no memory). */
static int h264_frame(int slot, int want_idr, uint16_t w, uint16_t h, uint8_t **pp,
                      uint32_t *p_size)
{
    int key = want_idr;
    const uint8_t *au = NULL;
    size_t au_len = 0, size;
    if (stream) {
        int idx = au_next;
        if (want_idr)
            while (!au_key[idx])
                idx = (idx + 1) % au_count;
        key = au_key[idx];
        au = stream + au_start[idx];
        au_len = au_end[idx] - au_start[idx];
        au_next = (idx + 1) % au_count;
    }
    if (key && SPLIT_PARAMETER_SETS) {
        /* The parameter sets go to their own buffers, the slice to the ring. */
        free_parameter_sets();
        size_t rest_at = 0;
        if (au) {
            if (split_recorded_idr(au, au_len, &rest_at) != 0)
                return -3;
            size = au_len - rest_at;
        } else {
            sps_buf = malloc(4 + 64);
            pps_buf = malloc(4 + sizeof pps);
            if (!sps_buf || !pps_buf)
                return -3;
            memcpy(sps_buf, start_code, 4);
            sps_len = 4 + (uint32_t)write_sps(sps_buf + 4, w, h);
            memcpy(pps_buf, start_code, 4);
            memcpy(pps_buf + 4, pps, sizeof pps);
            pps_len = 4 + sizeof pps;
            size = 4 + (frame_budget() > 8 ? frame_budget() : 8);
        }
        uint8_t *p = fill_slot(slot, 3, size);
        if (!p)
            return -3;
        if (au) {
            memcpy(p, au + rest_at, size);
        } else {
            memcpy(p, start_code, 4);
            write_slice(p + 4, idr_slice, size - 4);
        }
        *pp = p;
        *p_size = (uint32_t)size;
    } else {
        uint8_t sps_bytes[64];
        size_t sps_n = 0;
        size_t slice_n = frame_budget() > 8 ? frame_budget() : 8;
        if (au) {
            size = au_len;
        } else {
            if (key)
                sps_n = write_sps(sps_bytes, w, h);
            size = (key ? 4 + sps_n + 4 + sizeof pps : 0) + 4 + slice_n;
        }
        uint8_t *p = fill_slot(slot, key ? 3 : 4, size);
        if (!p)
            return -3;
        if (au) {
            memcpy(p, au, size);
        } else {
            size_t n = 0;
            if (key) {
                memcpy(p + n, start_code, 4);
                n += 4;
                memcpy(p + n, sps_bytes, sps_n);
                n += sps_n;
                memcpy(p + n, start_code, 4);
                n += 4;
                memcpy(p + n, pps, sizeof pps);
                n += sizeof pps;
            }
            memcpy(p + n, start_code, 4);
            n += 4;
            n += write_slice(p + n, key ? idr_slice : p_slice, slice_n);
        }
        *pp = p;
        *p_size = (uint32_t)size;
    }
    if (key) {
        counts.idrs++;
        frames_since_idr = 1;
    } else {
        frames_since_idr++;
    }
    return key ? 3 : 4;
}

static int jpeg_frame(int slot, uint8_t **pp, uint32_t *p_size)
{
    static const uint8_t jpeg[] = {0xff, 0xd8, 0xff, 0xe0, 0, 4, 'J', 'F', 0xff, 0xd9};
    uint8_t *p = fill_slot(slot, 0, sizeof jpeg);
    if (!p)
        return -3;
    memcpy(p, jpeg, sizeof jpeg);
    *pp = p;
    *p_size = sizeof jpeg;
    return 0;
}

static int clamp(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* A scripted read (mock_script, mock_script_frame). */
static int scripted_read(uint16_t w, uint16_t h, uint8_t **pp, uint32_t *p_size)
{
    int i = script_pos++;
    int code = script[i].code;
    if (script[i].kind == SCRIPT_RAW) {
        if (script[i].with_buffer) {
            int slot = next_slot();
            if (slot < 0)
                return -3;
            /* A few real bytes whatever size is reported: a reader must not trust it. */
            uint8_t *p = fill_slot(slot, code, 64);
            if (!p)
                return -3;
            memset(p, 0x5a, 64);
            *pp = p;
        }
        *p_size = script[i].size;
        return code;
    }
    if (code != 0 && code != 3 && code != 4)
        return code;
    int slot = next_slot();
    if (slot < 0)
        return -3;
    if (code == 0)
        return jpeg_frame(slot, pp, p_size);
    return h264_frame(slot, code == 3, w, h, pp, p_size);
}

/* What the input gives now: 0 = a picture, else the read's error. */
static int input_state(void)
{
    if (probing_reads > 0) {
        probing_reads--;
        return -4;
    }
    if (input_kind != INPUT_SUPPORTED) {
#if HAS_RESOLUTION_ERRORS
        return input_kind == INPUT_UNSUPPORTED ? -6 : -7;
#else
        return -1;
#endif
    }
    if (!signal_present || (board == 'p' && !receiver_on))
        return -1;
    return 0;
}

int kvmv_read_img(uint16_t width, uint16_t height, uint8_t type, uint16_t qlty,
                  uint8_t **pp_data, uint32_t *p_size)
{
    log_call("kvmv_read_img", type, 1);
    counts.reads++;
#if MOCK_GEN >= 25
    *pp_data = NULL;
    *p_size = 0;
#endif
    int pending_request = take_idr_request();
    uint16_t w = width && height ? width : input_w;
    uint16_t h = width && height ? height : input_h;
    if (!initialised) {
        counts.reads_before_init++;
        return -1;
    }
    if (script_pos < script_len)
        return scripted_read(w, h, pp_data, p_size);
    int state = input_state();
    if (state != 0)
        return state;
    /* The video processor's channel is aligned; the camera copies rows back to w. */
    vpss_width = (uint16_t)((w + VPSS_ALIGN - 1) / VPSS_ALIGN * VPSS_ALIGN);
    out_w = w;
    out_h = h;
    /* The encoder switch, as kvm_vision.cpp writes it. */
    if (venc_type == TYPE_MJPEG && type != TYPE_MJPEG)
        enc_init = 1;
    if (venc_type == TYPE_H264 && type != TYPE_H264) {
        if (auto_recyc)
            enc_channel = 0;
        enc_init = 0;
    }
    venc_type = type;
    if (type == TYPE_MJPEG) {
        int slot = next_slot();
        if (slot < 0)
            return -3;
        jpeg_quality = clamp(qlty, 51, 99);
        return jpeg_frame(slot, pp_data, p_size);
    }
    if (type != TYPE_H264)
        return -1; /* neither encoder: the library retries and gives up */
    int slot = next_slot();
    if (slot < 0)
        return -3;
    uint16_t bitrate = (uint16_t)clamp(qlty, 500, 10000);
    int want_idr = 0;
    if (!enc_init || enc_w != w || enc_h != h || enc_bitrate != bitrate) {
        enc_init = 1;
        enc_channel = 1;
        enc_w = w;
        enc_h = h;
        enc_bitrate = bitrate;
        counts.encoders++;
        want_idr = 1;
    }
    note_pull();
    if (!enc_channel || venc_timeouts_pending > 0) {
        /* The push or the wait for the output failed: the channel is deleted and the next
         * read creates a new one. The claimed slot stays empty. */
        if (enc_channel) {
            venc_timeouts_pending--;
            counts.venc_timeouts++;
        }
        enc_channel = 0;
        enc_init = 0;
        return -1;
    }
    if (pending_request || frames_since_idr >= gop)
        want_idr = 1;
#if SPLIT_PARAMETER_SETS
    if (want_idr && (sps_buf || pps_buf))
        return -3; /* the last IDR's parameter sets are still lent */
#endif
    return h264_frame(slot, want_idr, w, h, pp_data, p_size);
}

int free_kvmv_data(uint8_t **pp_data)
{
    if (pp_data == NULL || *pp_data == NULL) {
        counts.bad_frees++;
        return -1;
    }
    for (int i = 0; i < RING; i++) {
        if (ring[i].data != NULL && ring[i].data == *pp_data) {
            free(ring[i].data);
            ring[i].data = NULL;
            counts.frees++;
            counts.held--;
            if (SPLIT_PARAMETER_SETS && ring[i].type == 3)
                free_parameter_sets();
            return ring[i].type;
        }
    }
    counts.bad_frees++;
    return -1;
}

void set_h264_gop(uint8_t g)
{
    log_call("set_h264_gop", g, 0);
    counts.gop_sets++;
    gop = clamp(g, 1, 100);
    enc_init = 0;
}

#if SPLIT_PARAMETER_SETS
static int lend(uint8_t *buf, uint32_t len, int type, uint8_t **pp, uint32_t *p_size)
{
    if (buf == NULL)
        return -1;
    *pp = buf;
    *p_size = len;
    return type;
}

int kvmv_get_sps_frame(uint8_t **pp_data, uint32_t *p_size)
{
    return lend(sps_buf, sps_len, 1, pp_data, p_size);
}

int kvmv_get_pps_frame(uint8_t **pp_data, uint32_t *p_size)
{
    return lend(pps_buf, pps_len, 2, pp_data, p_size);
}
#endif

#if MOCK_GEN >= 25
void set_frame_detact(uint8_t n)
{
    log_call("set_frame_detact", n, 0);
    frame_detect = clamp(n, 0, 100);
}

void set_venc_auto_recyc(uint8_t en)
{
    log_call("set_venc_auto_recyc", en, 0);
    auto_recyc = en != 0;
}
#endif

#if HAS_HDMI_CONTROL
uint8_t kvmv_hdmi_control(uint8_t en)
{
    log_call("kvmv_hdmi_control", en, 0);
#if HAS_CAPTURE_FLAG
    if (en == 0)
        capture_enabled = 0;
#endif
    if (board != 'p') {
#if HAS_CAPTURE_FLAG
        if (en != 0)
            capture_enabled = 1;
#endif
        return (uint8_t)-1; /* no hardware control but on the PCIe board */
    }
    receiver_on = en != 0;
#if HAS_CAPTURE_FLAG
    capture_enabled = en != 0;
#endif
    return 0;
}
#endif

#if HAS_CAPTURE_FLAG
uint8_t kvmv_hdmi_signal_active(void)
{
    return capture_enabled && signal_present && (board != 'p' || receiver_on);
}
#endif

/* ---- control and statistics, for tests ------------------------------------------------ */

void mock_counts(struct mock_counts *out) { *out = counts; }

int mock_generation(void) { return MOCK_GEN; }

/* The next n reads return these codes (0, 3, 4 produce that kind of frame). */
void mock_script(const int *codes, int n)
{
    if (n > SCRIPT_MAX)
        n = SCRIPT_MAX;
    for (int i = 0; i < n; i++) {
        script[i].code = codes[i];
        script[i].kind = SCRIPT_CODE;
    }
    script_len = n;
    script_pos = 0;
}

/* One more scripted read after those pending: `code` with a ring buffer (with_buffer) or a
 * null pointer, and `size` reported whatever the buffer holds. */
void mock_script_frame(int code, int with_buffer, uint32_t size)
{
    if (script_pos == script_len)
        script_len = script_pos = 0;
    if (script_len == SCRIPT_MAX)
        return;
    script[script_len].code = code;
    script[script_len].kind = SCRIPT_RAW;
    script[script_len].with_buffer = with_buffer;
    script[script_len].size = size;
    script_len++;
}

void mock_set_signal(int present) { signal_present = present != 0; }

/* The board's variant, as the first character of /etc/kvm/hw ('p' = PCIe). */
void mock_set_board(char variant) { board = variant; }

static int listed(uint16_t w, uint16_t h, const uint16_t (*list)[2], int n)
{
    for (int i = 0; i < n; i++)
        if (list[i][0] == w && list[i][1] == h)
            return 1;
    return 0;
}

/* The input changes to w x h; the next `probing` reads answer -4 while it is "detected".
 * Then an input on the library's unsupported list answers -6, one on neither list -7. */
void mock_set_input(uint16_t w, uint16_t h, int probing)
{
    static const uint16_t supported[][2] = {
        {1920, 1080}, {1600, 900}, {1440, 1080}, {1440, 900}, {1280, 1024}, {1280, 960},
        {1280, 800},  {1280, 720}, {1152, 864},  {1024, 768}, {800, 600},   {640, 480},
    };
    static const uint16_t unsupported[][2] = {
        {1680, 1050}, {1440, 1050}, {1400, 1050}, {1368, 768}, {1366, 768}, {720, 576},
    };
    input_w = w;
    input_h = h;
    probing_reads = probing;
    if (listed(w, h, supported, sizeof supported / sizeof *supported))
        input_kind = INPUT_SUPPORTED;
    else if (listed(w, h, unsupported, sizeof unsupported / sizeof *unsupported))
        input_kind = INPUT_UNSUPPORTED;
    else
        input_kind = INPUT_UNKNOWN;
    enc_init = 0; /* the camera restarts */
}

/* The next n encodes do not deliver their output in time. */
void mock_venc_timeouts(int n) { venc_timeouts_pending = n; }

/* From now on "now" is this (µs) instead of the monotonic clock; -1 goes back to it. */
void mock_set_clock_us(int64_t us) { manual_now_us = us; }

int mock_gop(void) { return gop; }
int mock_frame_detect(void) { return frame_detect; }
int mock_bitrate(void) { return enc_bitrate; }
int mock_jpeg_quality(void) { return jpeg_quality; }
int mock_vpss_width(void) { return vpss_width; }
/* The size of the last picture read, as (width << 16) | height. */
uint32_t mock_output_size(void) { return (uint32_t)out_w << 16 | out_h; }
int mock_capture_enabled(void)
{
#if HAS_CAPTURE_FLAG
    return capture_enabled;
#else
    return -1;
#endif
}
int mock_receiver_on(void) { return receiver_on; }

/* H.264 reads per second over the last ones, in thousandths (0 before two reads). */
int mock_pull_fps_milli(void)
{
    if (pull_count < 2 || pulls[pull_count - 1] <= pulls[0])
        return 0;
    return (int)((int64_t)(pull_count - 1) * 1000000000 / (pulls[pull_count - 1] - pulls[0]));
}

/* The bitrate the stream really carries: the encoder spends bitrate/60 per frame. */
int mock_effective_kbps(void)
{
    return (int)((int64_t)enc_bitrate * mock_pull_fps_milli() / (ENCODER_FPS * 1000));
}

/* The calls so far, one a line: "name arg at_us repeat thread" (arg -1: none). Writes at
 * most size bytes (NUL-terminated) and returns the length the whole text needs. */
int mock_calls(char *out, int size)
{
    int need = 0;
    for (int i = 0; i < call_count; i++) {
        char line[96];
        int n = snprintf(line, sizeof line, "%s %d %lld %ld %s\n", calls[i].name, calls[i].arg,
                         (long long)calls[i].at_us, calls[i].repeat, calls[i].thread);
        if (out && need + n < size)
            memcpy(out + need, line, (size_t)n);
        need += n;
    }
    if (out && size > 0)
        out[need < size ? need : size - 1] = 0;
    return need;
}
