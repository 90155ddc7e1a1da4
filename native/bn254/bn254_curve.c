/* Instantiates the group law for G1 and G2, plus the G2-only maps. */
#include <stdlib.h>

#include "bn254_curve.h"

#define CURVE(name) g1_##name
#define FIELD(name) fp_##name
#define field_t fp_t
#define affine_t g1_affine_t
#define jacobian_t g1_jacobian_t
#define CURVE_B (&BN254_G1_B)
#define FIELD_ONE (&BN254_FP_ONE)
#include "bn254_curve_template.h"
#undef CURVE
#undef FIELD
#undef field_t
#undef affine_t
#undef jacobian_t
#undef CURVE_B
#undef FIELD_ONE

static const fp2_t FP2_ONE = {{{0xd35d438dc58f0d9dULL, 0x0a78eb28f5c70b3dULL, 0x666ea36f7879462cULL, 0x0e0a77c19a07df2fULL}},
                              {{0, 0, 0, 0}}};

#define CURVE(name) g2_##name
#define FIELD(name) fp2_##name
#define field_t fp2_t
#define affine_t g2_affine_t
#define jacobian_t g2_jacobian_t
#define CURVE_B (&BN254_TWIST_B)
#define FIELD_ONE (&FP2_ONE)
#include "bn254_curve_template.h"
#undef CURVE
#undef FIELD
#undef field_t
#undef affine_t
#undef jacobian_t
#undef CURVE_B
#undef FIELD_ONE

void g2_psi(g2_affine_t *out, const g2_affine_t *p) {
    g2_affine_t r = *p;
    fp2_conjugate(&r.x, &p->x);
    fp2_mul(&r.x, &r.x, &BN254_FROBENIUS[0][2]);
    fp2_conjugate(&r.y, &p->y);
    fp2_mul(&r.y, &r.y, &BN254_FROBENIUS[0][3]);
    *out = r;
}

int g1_fixed_base_init(g1_fixed_base_t *table, const g1_affine_t *p) {
    enum { COUNT = G1_WINDOWS * G1_WINDOW_ENTRIES };
    g1_jacobian_t *multiples = malloc(COUNT * sizeof *multiples);
    if (multiples == NULL) return 0;
    g1_jacobian_t base;
    g1_from_affine(&base, p);
    for (int window = 0; window < G1_WINDOWS; window++) {
        g1_jacobian_t *row = &multiples[window * G1_WINDOW_ENTRIES];
        row[0] = base;
        for (int k = 1; k < G1_WINDOW_ENTRIES; k++) g1_add(&row[k], &row[k - 1], &base);
        g1_add(&base, &row[G1_WINDOW_ENTRIES - 1], &base); /* 16 * base */
    }
    int ok = g1_batch_to_affine(&table->entries[0][0], multiples, COUNT);
    free(multiples);
    return ok;
}

void g1_fixed_base_mul(g1_jacobian_t *out, const g1_fixed_base_t *table, const uint64_t scalar[4]) {
    g1_jacobian_t acc;
    g1_set_infinity(&acc);
    for (int window = 0; window < G1_WINDOWS; window++) {
        unsigned digit = (unsigned)(scalar[window / 16] >> (4 * (window % 16))) & 15u;
        if (digit) g1_add_affine(&acc, &acc, &table->entries[window][digit - 1]);
    }
    *out = acc;
}

static void g2_psi_jacobian(g2_jacobian_t *out, const g2_jacobian_t *p) {
    /* Conjugation is a field automorphism, so it commutes with the Z^2, Z^3 scaling. */
    g2_jacobian_t r;
    fp2_conjugate(&r.x, &p->x);
    fp2_mul(&r.x, &r.x, &BN254_FROBENIUS[0][2]);
    fp2_conjugate(&r.y, &p->y);
    fp2_mul(&r.y, &r.y, &BN254_FROBENIUS[0][3]);
    fp2_conjugate(&r.z, &p->z);
    *out = r;
}

int g2_in_subgroup(const g2_affine_t *p) {
    /* The twist's order is r times a cofactor with small factors, so an on-twist point can
     * sit outside the group the pairing is defined on. Instead of [r]P = O this uses the
     * equivalent test of El Housni, Guillevic and Piellard (eprint 2022/352) as gnark does:
     * [x+1]P + psi([x]P) + psi^2([x]P) = psi^3([2x]P); 63-bit x instead of 254-bit r. The
     * tests check it against [r]P on random and small-order twist points. */
    if (p->infinity) return 1;
    const uint64_t x[4] = {BN254_X, 0, 0, 0};
    g2_jacobian_t x_p, lhs, term, rhs;
    g2_scalar_mul(&x_p, p, x);
    g2_add_affine(&lhs, &x_p, p);
    g2_psi_jacobian(&term, &x_p);
    g2_add(&lhs, &lhs, &term);
    g2_psi_jacobian(&term, &term);
    g2_add(&lhs, &lhs, &term);
    g2_double(&rhs, &x_p);
    g2_psi_jacobian(&rhs, &rhs);
    g2_psi_jacobian(&rhs, &rhs);
    g2_psi_jacobian(&rhs, &rhs);
    return g2_equal(&lhs, &rhs);
}

/* The definition, kept as the reference the fast test is checked against. */
int g2_in_subgroup_by_order(const g2_affine_t *p) {
    if (p->infinity) return 1;
    g2_jacobian_t product;
    g2_scalar_mul(&product, p, BN254_R);
    return g2_is_infinity(&product);
}
