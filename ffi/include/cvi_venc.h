/*
 * The one entry point nanokvmd uses from the vendor's video encoder library (libvenc.so, next
 * to libkvm.so in dl_lib/): ask a running encoder channel for an IDR. Declared from the
 * documented behaviour; loaded at run time and optional (older images may lack it).
 */
#ifndef NANOKVMD_CVI_VENC_H
#define NANOKVMD_CVI_VENC_H

/*
 * Makes the next frame of encoder channel VeChn an IDR. bInstant != 0: the very next frame,
 * not the next GOP boundary. Returns 0 on success (CVI_SUCCESS), an error code otherwise.
 * libkvm encodes H.264 on channel 1.
 */
int CVI_VENC_RequestIDR(int VeChn, int bInstant);

#endif
