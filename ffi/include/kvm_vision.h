/*
 * The C API of the NanoKVM vendor video library (libkvm.so), declared from the documented
 * behaviour (facts: the device reference, section 1, and the vendor-library reference for
 * which release exports what). nanokvmd loads the library at run time, so building needs
 * neither this library nor its dependencies.
 *
 * Every release since v1.3.0 exports the first block; the second block is optional: each
 * symbol is looked up on its own and its absence costs a feature, never the start.
 */
#ifndef NANOKVMD_KVM_VISION_H
#define NANOKVMD_KVM_VISION_H

#include <stdint.h>

/* ---- required: in every released libkvm.so ---- */

/* Opens capture (VI -> VPSS, NV21) and starts the HDMI detection and watchdog threads. */
void kvmv_init(uint8_t debug_en);
void kvmv_deinit(void);

/*
 * Captures and encodes one frame (blocking). width/height 0,0 follow the HDMI input.
 * type: 0 = MJPEG, 1 = H.264. qlty: JPEG quality (51..99) or H.264 kbit/s (500..10000).
 * On success *pp_data and *p_size hold a buffer the caller must release with free_kvmv_data.
 * Returns the frame kind (0 JPEG, 3 IDR, 4 P, 5 unchanged) or a negative error.
 */
int kvmv_read_img(uint16_t width, uint16_t height, uint8_t type, uint16_t qlty,
                  uint8_t **pp_data, uint32_t *p_size);
int free_kvmv_data(uint8_t **pp_data);

/* Stores the GOP (1..100) and recreates the H.264 encoder: the next frame is an IDR. */
void set_h264_gop(uint8_t gop);

/* ---- optional: missing from some releases ---- */

/* Since 2.1.6. Enables/disables capture; 0 on the PCIe board (hardware line), 255 elsewhere. */
uint8_t kvmv_hdmi_control(uint8_t en);
/* Only in the untagged library after 2.5.0: capture enabled and an HDMI signal present. */
uint8_t kvmv_hdmi_signal_active(void);
/* Since 2.2.3. MJPEG-only skip-unchanged detector: 0 off, else every n-th frame (1..100). */
void set_frame_detact(uint8_t n);
/* Since 2.2.2. 1: switching MJPEG <-> H.264 destroys the other encoder. */
void set_venc_auto_recyc(uint8_t en);
void free_all_kvmv_data(void);
/*
 * Up to 2.2.2 only: an IDR read (3) returns the IDR slice alone; its SPS and PPS are lent by
 * these two until the IDR's buffer is freed. Return 1 (SPS) / 2 (PPS), or -1.
 */
int kvmv_get_sps_frame(uint8_t **pp_data, uint32_t *p_size);
int kvmv_get_pps_frame(uint8_t **pp_data, uint32_t *p_size);

#endif
