/*
 * The C API of the NanoKVM vendor video library (libkvm.so), declared from the documented
 * behaviour (facts: the device reference, section 1). nanokvmd loads the library at run
 * time, so building needs neither this library nor its dependencies.
 */
#ifndef NANOKVMD_KVM_VISION_H
#define NANOKVMD_KVM_VISION_H

#include <stdint.h>

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
void free_all_kvmv_data(void);

/* Stores the GOP (1..100) and recreates the H.264 encoder: the next frame is an IDR. */
void set_h264_gop(uint8_t gop);
/* MJPEG-only skip-unchanged detector: 0 off, else check every n-th frame (1..100). */
void set_frame_detact(uint8_t n);
void set_venc_auto_recyc(uint8_t en);
uint8_t kvmv_hdmi_control(uint8_t en);
uint8_t kvmv_hdmi_signal_active(void);

#endif
