/*
 * A stand-in for the vendor's libvenc.so, for host tests only: CVI_VENC_RequestIDR, which
 * the mock libkvm.so next to it takes as "the next
 * H.264 frame is an IDR". Built without it (-DMOCK_VENC_WITHOUT_REQUEST_IDR) it models an
 * image whose libvenc lacks the symbol.
 */
static int pending;
static long requests;

#ifndef MOCK_VENC_WITHOUT_REQUEST_IDR
int CVI_VENC_RequestIDR(int VeChn, int bInstant)
{
    requests++;
    /* libkvm encodes H.264 on channel 1; other channels do not exist here. */
    if (VeChn != 1)
        return -1;
    (void)bInstant;
    pending = 1;
    return 0;
}
#endif

int mock_venc_take_request(void)
{
    int was = pending;
    pending = 0;
    return was;
}

long mock_venc_requests(void) { return requests; }
