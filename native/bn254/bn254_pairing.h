/* Optimal ate pairing on BN254: Miller loop over precomputed G2 lines, final exponentiation. */
#ifndef BN254_PAIRING_H
#define BN254_PAIRING_H

#include "bn254_curve.h"

/* One Miller-loop line before evaluation at P: c0 * y_P + (c3 * x_P + c4 v) w. */
typedef struct { fp2_t c0, c3, c4; } line_t;

/* Every line the Miller loop needs for one G2 point, computed once per point. */
typedef struct { line_t lines[BN254_LINE_COUNT]; } g2_prepared_t;

/* q must be a finite point of the order-r subgroup. */
void g2_prepare(g2_prepared_t *out, const g2_affine_t *q);

/* Product of the Miller functions of the pairs; pairs with P at infinity contribute 1. */
void miller_loop(fp12_t *out, const g1_affine_t *points, const g2_prepared_t *const *prepared, size_t count);

/* f^((p^12 - 1) / r), with the hard part through the x-adic decomposition. */
void final_exponentiation(fp12_t *out, const fp12_t *f);

/* a^e in the cyclotomic subgroup, e as little-endian limbs. */
void cyclotomic_pow(fp12_t *out, const fp12_t *a, const uint64_t *exponent, size_t limb_count);

#endif
