/* Base field Fp and its tower Fp2 -> Fp6 -> Fp12 for BN254 (alt_bn128).
 *
 * Fp elements are 4 little-endian 64-bit limbs in Montgomery form (R = 2^256).
 * Fp2 = Fp[u]/(u^2 + 1), Fp6 = Fp2[v]/(v^3 - xi) with xi = 9 + u, Fp12 = Fp6[w]/(w^2 - v).
 * Fp and Fp2 arithmetic is inline because every other layer is built from it and the
 * call overhead would otherwise dominate the pairing.
 */
#ifndef BN254_FIELD_H
#define BN254_FIELD_H

#include <stdint.h>
#include <string.h>

__extension__ typedef unsigned __int128 bn254_u128;

typedef struct { uint64_t limb[4]; } fp_t;
typedef struct { fp_t c0, c1; } fp2_t;
typedef struct { fp2_t c0, c1, c2; } fp6_t;
typedef struct { fp6_t c0, c1; } fp12_t;

#include "bn254_constants.h"

static inline int fp_is_zero(const fp_t *a) {
    return (a->limb[0] | a->limb[1] | a->limb[2] | a->limb[3]) == 0;
}

static inline int fp_equal(const fp_t *a, const fp_t *b) {
    return ((a->limb[0] ^ b->limb[0]) | (a->limb[1] ^ b->limb[1]) |
            (a->limb[2] ^ b->limb[2]) | (a->limb[3] ^ b->limb[3])) == 0;
}

/* Compares little-endian 4-limb integers: -1, 0 or 1. */
static inline int limbs_compare(const uint64_t a[4], const uint64_t b[4]) {
    for (int i = 3; i >= 0; i--) {
        if (a[i] != b[i]) return a[i] < b[i] ? -1 : 1;
    }
    return 0;
}

/* out = a - b over 256 bits; returns the borrow. */
static inline uint64_t limbs_subtract(uint64_t out[4], const uint64_t a[4], const uint64_t b[4]) {
    uint64_t borrow = 0;
    for (int i = 0; i < 4; i++) {
        bn254_u128 diff = (bn254_u128)a[i] - b[i] - borrow;
        out[i] = (uint64_t)diff;
        borrow = (uint64_t)(diff >> 64) & 1;
    }
    return borrow;
}

static inline uint64_t limbs_add(uint64_t out[4], const uint64_t a[4], const uint64_t b[4]) {
    uint64_t carry = 0;
    for (int i = 0; i < 4; i++) {
        bn254_u128 sum = (bn254_u128)a[i] + b[i] + carry;
        out[i] = (uint64_t)sum;
        carry = (uint64_t)(sum >> 64);
    }
    return carry;
}

/* Keeps a when keep_a is all ones, b when it is zero; branch-free because the choice is a
 * coin flip on random data and a mispredicted branch costs more than the arithmetic. */
static inline void limbs_select(uint64_t out[4], uint64_t keep_a, const uint64_t a[4], const uint64_t b[4]) {
    for (int i = 0; i < 4; i++) out[i] = (a[i] & keep_a) | (b[i] & ~keep_a);
}

static inline void fp_add(fp_t *out, const fp_t *a, const fp_t *b) {
    /* p < 2^254, so the sum of two reduced values never leaves 256 bits. */
    uint64_t sum[4], reduced[4];
    limbs_add(sum, a->limb, b->limb);
    uint64_t borrow = limbs_subtract(reduced, sum, BN254_P);
    limbs_select(out->limb, (uint64_t)0 - borrow, sum, reduced);
}

static inline void fp_sub(fp_t *out, const fp_t *a, const fp_t *b) {
    uint64_t diff[4], correction[4];
    uint64_t mask = (uint64_t)0 - limbs_subtract(diff, a->limb, b->limb);
    for (int i = 0; i < 4; i++) correction[i] = BN254_P[i] & mask;
    limbs_add(out->limb, diff, correction);
}

static inline void fp_double(fp_t *out, const fp_t *a) { fp_add(out, a, a); }

static inline void fp_neg(fp_t *out, const fp_t *a) {
    if (fp_is_zero(a)) {
        *out = *a;
        return;
    }
    limbs_subtract(out->limb, BN254_P, a->limb);
}

/* Montgomery product a * b / 2^256 mod p (CIOS). */
static inline void fp_mul(fp_t *out, const fp_t *a, const fp_t *b) {
    uint64_t t[6] = {0, 0, 0, 0, 0, 0};
    for (int i = 0; i < 4; i++) {
        uint64_t carry = 0;
        bn254_u128 acc;
        for (int j = 0; j < 4; j++) {
            acc = (bn254_u128)a->limb[j] * b->limb[i] + t[j] + carry;
            t[j] = (uint64_t)acc;
            carry = (uint64_t)(acc >> 64);
        }
        acc = (bn254_u128)t[4] + carry;
        t[4] = (uint64_t)acc;
        t[5] = (uint64_t)(acc >> 64);
        uint64_t m = t[0] * BN254_MONT_INV;
        acc = (bn254_u128)m * BN254_P[0] + t[0];
        carry = (uint64_t)(acc >> 64);
        for (int j = 1; j < 4; j++) {
            acc = (bn254_u128)m * BN254_P[j] + t[j] + carry;
            t[j - 1] = (uint64_t)acc;
            carry = (uint64_t)(acc >> 64);
        }
        acc = (bn254_u128)t[4] + carry;
        t[3] = (uint64_t)acc;
        t[4] = t[5] + (uint64_t)(acc >> 64);
    }
    /* The result is below 2p < 2^256, so t[4] is zero and one subtraction suffices. */
    uint64_t reduced[4];
    uint64_t borrow = limbs_subtract(reduced, t, BN254_P);
    limbs_select(out->limb, (uint64_t)0 - borrow, t, reduced);
}

static inline void fp_square(fp_t *out, const fp_t *a) { fp_mul(out, a, a); }

void fp_inverse(fp_t *out, const fp_t *a); /* zero maps to zero */

/* Big-endian 32 bytes -> Montgomery form; returns 0 when the value is not below p. */
int fp_from_bytes(fp_t *out, const uint8_t bytes[32]);
void fp_to_bytes(uint8_t bytes[32], const fp_t *a);

/* ---- Fp2 ---- */

static inline int fp2_is_zero(const fp2_t *a) { return fp_is_zero(&a->c0) && fp_is_zero(&a->c1); }

static inline int fp2_equal(const fp2_t *a, const fp2_t *b) {
    return fp_equal(&a->c0, &b->c0) && fp_equal(&a->c1, &b->c1);
}

static inline void fp2_add(fp2_t *out, const fp2_t *a, const fp2_t *b) {
    fp_add(&out->c0, &a->c0, &b->c0);
    fp_add(&out->c1, &a->c1, &b->c1);
}

static inline void fp2_sub(fp2_t *out, const fp2_t *a, const fp2_t *b) {
    fp_sub(&out->c0, &a->c0, &b->c0);
    fp_sub(&out->c1, &a->c1, &b->c1);
}

static inline void fp2_double(fp2_t *out, const fp2_t *a) { fp2_add(out, a, a); }

static inline void fp2_neg(fp2_t *out, const fp2_t *a) {
    fp_neg(&out->c0, &a->c0);
    fp_neg(&out->c1, &a->c1);
}

static inline void fp2_conjugate(fp2_t *out, const fp2_t *a) {
    out->c0 = a->c0;
    fp_neg(&out->c1, &a->c1);
}

/* 512-bit product of two 256-bit integers, without reduction. */
static inline void wide_mul(uint64_t out[8], const uint64_t a[4], const uint64_t b[4]) {
    uint64_t t[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int i = 0; i < 4; i++) {
        uint64_t carry = 0;
        for (int j = 0; j < 4; j++) {
            bn254_u128 acc = (bn254_u128)a[j] * b[i] + t[i + j] + carry;
            t[i + j] = (uint64_t)acc;
            carry = (uint64_t)(acc >> 64);
        }
        t[i + 4] = carry;
    }
    memcpy(out, t, sizeof t);
}

static inline void wide_add(uint64_t out[8], const uint64_t a[8], const uint64_t b[8]) {
    uint64_t carry = 0;
    for (int i = 0; i < 8; i++) {
        bn254_u128 sum = (bn254_u128)a[i] + b[i] + carry;
        out[i] = (uint64_t)sum;
        carry = (uint64_t)(sum >> 64);
    }
}

static inline void wide_subtract(uint64_t out[8], const uint64_t a[8], const uint64_t b[8]) {
    uint64_t borrow = 0;
    for (int i = 0; i < 8; i++) {
        bn254_u128 diff = (bn254_u128)a[i] - b[i] - borrow;
        out[i] = (uint64_t)diff;
        borrow = (uint64_t)(diff >> 64) & 1;
    }
}

/* t / 2^256 mod p for t < p * 2^256, fully reduced (Montgomery reduction). */
static inline void montgomery_reduce(fp_t *out, const uint64_t wide[8]) {
    uint64_t t[8], top = 0;
    memcpy(t, wide, sizeof t);
    for (int i = 0; i < 4; i++) {
        uint64_t m = t[i] * BN254_MONT_INV, carry = 0;
        for (int j = 0; j < 4; j++) {
            bn254_u128 acc = (bn254_u128)m * BN254_P[j] + t[i + j] + carry;
            t[i + j] = (uint64_t)acc;
            carry = (uint64_t)(acc >> 64);
        }
        bn254_u128 acc = (bn254_u128)t[i + 4] + carry + top;
        t[i + 4] = (uint64_t)acc;
        top = (uint64_t)(acc >> 64);
    }
    /* (t + m p) / 2^256 < 2p < 2^256: top is zero and one subtraction suffices. */
    uint64_t reduced[4];
    uint64_t borrow = limbs_subtract(reduced, t + 4, BN254_P);
    limbs_select(out->limb, (uint64_t)0 - borrow, t + 4, reduced);
}

/* Karatsuba with lazy reduction: three 512-bit products, two Montgomery reductions.
 * c1 = (a0 + a1)(b0 + b1) - a0 b0 - a1 b1 = a0 b1 + a1 b0 < 2 p^2, and
 * c0 = a0 b0 - a1 b1 + p^2 lies in [0, 2 p^2); both are below p 2^256 as reduction needs. */
static inline void fp2_mul(fp2_t *out, const fp2_t *a, const fp2_t *b) {
    uint64_t a_sum[4], b_sum[4], t0[8], t1[8], cross[8], real[8];
    limbs_add(a_sum, a->c0.limb, a->c1.limb); /* below 2p < 2^255: no reduction needed */
    limbs_add(b_sum, b->c0.limb, b->c1.limb);
    wide_mul(t0, a->c0.limb, b->c0.limb);
    wide_mul(t1, a->c1.limb, b->c1.limb);
    wide_mul(cross, a_sum, b_sum);
    wide_subtract(cross, cross, t0);
    wide_subtract(cross, cross, t1);
    wide_add(real, t0, BN254_P_SQUARED);
    wide_subtract(real, real, t1);
    montgomery_reduce(&out->c0, real);
    montgomery_reduce(&out->c1, cross);
}

static inline void fp2_square(fp2_t *out, const fp2_t *a) {
    fp_t sum, diff, product;
    fp_add(&sum, &a->c0, &a->c1);
    fp_sub(&diff, &a->c0, &a->c1);
    fp_mul(&product, &a->c0, &a->c1);
    fp_mul(&out->c0, &sum, &diff);
    fp_double(&out->c1, &product);
}

static inline void fp2_mul_by_fp(fp2_t *out, const fp2_t *a, const fp_t *b) {
    fp_mul(&out->c0, &a->c0, b);
    fp_mul(&out->c1, &a->c1, b);
}

/* a * k mod p for a small k (at most 16): one word product and one quotient estimate
 * instead of a chain of modular doublings. The estimate divides the top 64 bits by a
 * rounded-up top of p, so it never exceeds the true quotient; the loop settles the
 * remaining one or two subtractions whatever the estimate was. */
static inline void fp_mul_small(fp_t *out, const fp_t *a, uint64_t k) {
    uint64_t t[5], carry = 0;
    for (int i = 0; i < 4; i++) {
        bn254_u128 product = (bn254_u128)a->limb[i] * k + carry;
        t[i] = (uint64_t)product;
        carry = (uint64_t)(product >> 64);
    }
    t[4] = carry;
    uint64_t quotient = ((t[4] << 60) | (t[3] >> 4)) / ((BN254_P[3] >> 4) + 1);
    uint64_t borrow = 0;
    carry = 0;
    for (int i = 0; i < 4; i++) {
        bn254_u128 product = (bn254_u128)BN254_P[i] * quotient + carry;
        carry = (uint64_t)(product >> 64);
        bn254_u128 diff = (bn254_u128)t[i] - (uint64_t)product - borrow;
        t[i] = (uint64_t)diff;
        borrow = (uint64_t)(diff >> 64) & 1;
    }
    t[4] = t[4] - carry - borrow;
    while (t[4] != 0 || limbs_compare(t, BN254_P) >= 0) {
        t[4] -= limbs_subtract(t, t, BN254_P);
    }
    memcpy(out->limb, t, sizeof out->limb);
}

/* Multiplication by xi = 9 + u, the Fp6 non-residue: (9 a0 - a1) + (9 a1 + a0) u. */
static inline void fp2_mul_by_xi(fp2_t *out, const fp2_t *a) {
    fp_t nine_c0, nine_c1;
    fp_mul_small(&nine_c0, &a->c0, 9);
    fp_mul_small(&nine_c1, &a->c1, 9);
    fp_t c0, c1;
    fp_sub(&c0, &nine_c0, &a->c1);
    fp_add(&c1, &nine_c1, &a->c0);
    out->c0 = c0;
    out->c1 = c1;
}

void fp2_inverse(fp2_t *out, const fp2_t *a);

/* ---- Fp6 and Fp12 (bn254_tower.c) ---- */

void fp6_add(fp6_t *out, const fp6_t *a, const fp6_t *b);
void fp6_sub(fp6_t *out, const fp6_t *a, const fp6_t *b);
void fp6_neg(fp6_t *out, const fp6_t *a);
void fp6_mul(fp6_t *out, const fp6_t *a, const fp6_t *b);
void fp6_square(fp6_t *out, const fp6_t *a);
void fp6_mul_by_v(fp6_t *out, const fp6_t *a);
void fp6_inverse(fp6_t *out, const fp6_t *a);

void fp12_set_one(fp12_t *out);
int fp12_is_one(const fp12_t *a);
int fp12_equal(const fp12_t *a, const fp12_t *b);
void fp12_mul(fp12_t *out, const fp12_t *a, const fp12_t *b);
void fp12_square(fp12_t *out, const fp12_t *a);
void fp12_conjugate(fp12_t *out, const fp12_t *a);
void fp12_inverse(fp12_t *out, const fp12_t *a);
/* a^(p^power) for power in 1..3. */
void fp12_frobenius(fp12_t *out, const fp12_t *a, int power);
/* Multiplies by the sparse element c0 + (c3 + c4 v) w that a Miller-loop line produces. */
void fp12_mul_by_line(fp12_t *out, const fp12_t *a, const fp2_t *c0, const fp2_t *c3, const fp2_t *c4);
/* Squaring valid only in the cyclotomic subgroup (after the easy part of the final exponentiation). */
void fp12_cyclotomic_square(fp12_t *out, const fp12_t *a);

#endif
