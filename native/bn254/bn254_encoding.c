#include "bn254_encoding.h"

static int all_zero(const uint8_t *bytes, size_t length) {
    uint8_t acc = 0;
    for (size_t i = 0; i < length; i++) acc |= bytes[i];
    return acc == 0;
}

int load_fp2(fp2_t *out, const uint8_t *bytes) {
    return fp_from_bytes(&out->c0, bytes) & fp_from_bytes(&out->c1, bytes + 32);
}

void store_fp2(uint8_t *bytes, const fp2_t *a) {
    fp_to_bytes(bytes, &a->c0);
    fp_to_bytes(bytes + 32, &a->c1);
}

/* Fp12 as 12 Fp values in tower order: c0.c0.c0, c0.c0.c1, c0.c1.c0, ..., c1.c2.c1. */
int load_fp12(fp12_t *out, const uint8_t *bytes) {
    fp2_t *coefficients[6] = {&out->c0.c0, &out->c0.c1, &out->c0.c2, &out->c1.c0, &out->c1.c1, &out->c1.c2};
    int ok = 1;
    for (int i = 0; i < 6; i++) ok &= load_fp2(coefficients[i], bytes + 64 * i);
    return ok;
}

void store_fp12(uint8_t *bytes, const fp12_t *a) {
    const fp2_t *coefficients[6] = {&a->c0.c0, &a->c0.c1, &a->c0.c2, &a->c1.c0, &a->c1.c1, &a->c1.c2};
    for (int i = 0; i < 6; i++) store_fp2(bytes + 64 * i, coefficients[i]);
}

int load_g1(g1_affine_t *out, const uint8_t *bytes) {
    memset(out, 0, sizeof *out);
    if (all_zero(bytes, 64)) {
        out->infinity = 1;
        return 1;
    }
    return fp_from_bytes(&out->x, bytes) & fp_from_bytes(&out->y, bytes + 32);
}

void store_g1(uint8_t *bytes, const g1_affine_t *p) {
    if (p->infinity) {
        memset(bytes, 0, 64);
        return;
    }
    fp_to_bytes(bytes, &p->x);
    fp_to_bytes(bytes + 32, &p->y);
}

int load_g2(g2_affine_t *out, const uint8_t *bytes) {
    memset(out, 0, sizeof *out);
    if (all_zero(bytes, 128)) {
        out->infinity = 1;
        return 1;
    }
    return load_fp2(&out->x, bytes) & load_fp2(&out->y, bytes + 64);
}

void store_g2(uint8_t *bytes, const g2_affine_t *p) {
    if (p->infinity) {
        memset(bytes, 0, 128);
        return;
    }
    store_fp2(bytes, &p->x);
    store_fp2(bytes + 64, &p->y);
}

void load_limbs(uint64_t limbs[4], const uint8_t *bytes) {
    for (int limb = 0; limb < 4; limb++) {
        uint64_t word = 0;
        for (int i = 0; i < 8; i++) word = (word << 8) | bytes[(3 - limb) * 8 + i];
        limbs[limb] = word;
    }
}

int load_scalar(uint64_t limbs[4], const uint8_t *bytes) {
    load_limbs(limbs, bytes);
    return limbs_compare(limbs, BN254_R) < 0;
}
