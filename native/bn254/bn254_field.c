/* The non-inline parts of Fp and Fp2: inversion and byte conversion. */
#include "bn254_field.h"

void fp_inverse(fp_t *out, const fp_t *a) {
    /* Fermat: a^(p-2). Inversions are rare (affine conversions), so simplicity wins. */
    fp_t result = BN254_FP_ONE;
    fp_t base = *a;
    for (int limb = 0; limb < 4; limb++) {
        uint64_t word = BN254_P_MINUS_2[limb];
        for (int bit = 0; bit < 64; bit++) {
            if ((word >> bit) & 1) fp_mul(&result, &result, &base);
            fp_square(&base, &base);
        }
    }
    *out = result;
}

int fp_from_bytes(fp_t *out, const uint8_t bytes[32]) {
    fp_t canonical;
    for (int limb = 0; limb < 4; limb++) {
        uint64_t word = 0;
        for (int i = 0; i < 8; i++) word = (word << 8) | bytes[(3 - limb) * 8 + i];
        canonical.limb[limb] = word;
    }
    if (limbs_compare(canonical.limb, BN254_P) >= 0) return 0;
    fp_mul(out, &canonical, &BN254_MONT_R2);
    return 1;
}

void fp_to_bytes(uint8_t bytes[32], const fp_t *a) {
    static const fp_t one_plain = {{1, 0, 0, 0}};
    fp_t canonical;
    fp_mul(&canonical, a, &one_plain);
    for (int limb = 0; limb < 4; limb++) {
        uint64_t word = canonical.limb[limb];
        for (int i = 7; i >= 0; i--) {
            bytes[(3 - limb) * 8 + i] = (uint8_t)word;
            word >>= 8;
        }
    }
}

void fp2_inverse(fp2_t *out, const fp2_t *a) {
    /* 1/(a0 + a1 u) = (a0 - a1 u) / (a0^2 + a1^2) since u^2 = -1. */
    fp_t norm, t, norm_inverse;
    fp_square(&norm, &a->c0);
    fp_square(&t, &a->c1);
    fp_add(&norm, &norm, &t);
    fp_inverse(&norm_inverse, &norm);
    fp_mul(&out->c0, &a->c0, &norm_inverse);
    fp_mul(&t, &a->c1, &norm_inverse);
    fp_neg(&out->c1, &t);
}
