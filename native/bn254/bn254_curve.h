/* G1: y^2 = x^3 + 3 over Fp. G2: the D-type sextic twist y^2 = x^3 + 3/xi over Fp2.
 * Both share one implementation (bn254_curve_template.h) instantiated per field. */
#ifndef BN254_CURVE_H
#define BN254_CURVE_H

#include <stddef.h>

#include "bn254_field.h"

typedef struct { fp_t x, y; int infinity; } g1_affine_t;
typedef struct { fp_t x, y, z; } g1_jacobian_t; /* z = 0 is the point at infinity */
typedef struct { fp2_t x, y; int infinity; } g2_affine_t;
typedef struct { fp2_t x, y, z; } g2_jacobian_t;

#define BN254_CURVE_DECLARE(curve, affine_t, jacobian_t)                                       \
    int curve##_is_on_curve(const affine_t *p);                                                \
    void curve##_from_affine(jacobian_t *out, const affine_t *p);                              \
    void curve##_to_affine(affine_t *out, const jacobian_t *p);                                \
    void curve##_set_infinity(jacobian_t *out);                                                \
    int curve##_is_infinity(const jacobian_t *p);                                              \
    void curve##_negate_affine(affine_t *out, const affine_t *p);                              \
    void curve##_double(jacobian_t *out, const jacobian_t *p);                                 \
    void curve##_add(jacobian_t *out, const jacobian_t *p, const jacobian_t *q);               \
    void curve##_add_affine(jacobian_t *out, const jacobian_t *p, const affine_t *q);          \
    /* scalar: little-endian limbs, any value below 2^256 */                                   \
    void curve##_scalar_mul(jacobian_t *out, const affine_t *p, const uint64_t scalar[4]);     \
    int curve##_equal(const jacobian_t *p, const jacobian_t *q);                               \
    int curve##_batch_to_affine(affine_t *out, const jacobian_t *points, size_t count);

BN254_CURVE_DECLARE(g1, g1_affine_t, g1_jacobian_t)
BN254_CURVE_DECLARE(g2, g2_affine_t, g2_jacobian_t)

/* Fixed-base multiplication by 4-bit windows: entries[w][k - 1] = k * 16^w * P, so a
 * 256-bit scalar costs at most 64 mixed additions and no doublings. ~69 KB per point. */
#define G1_WINDOWS 64
#define G1_WINDOW_ENTRIES 15
typedef struct { g1_affine_t entries[G1_WINDOWS][G1_WINDOW_ENTRIES]; } g1_fixed_base_t;

/* p must be a finite point of G1; returns 0 when out of memory. */
int g1_fixed_base_init(g1_fixed_base_t *table, const g1_affine_t *p);
void g1_fixed_base_mul(g1_jacobian_t *out, const g1_fixed_base_t *table, const uint64_t scalar[4]);

/* psi = twist^-1 . Frobenius . twist, the endomorphism acting as [p] on G2. */
void g2_psi(g2_affine_t *out, const g2_affine_t *p);
/* Membership in the order-r subgroup; p must be on the twist. */
int g2_in_subgroup(const g2_affine_t *p);
/* The same by computing [r]p, slower; the reference for tests. */
int g2_in_subgroup_by_order(const g2_affine_t *p);

#endif
