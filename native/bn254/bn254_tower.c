/* Fp6 = Fp2[v]/(v^3 - xi) and Fp12 = Fp6[w]/(w^2 - v). */
#include "bn254_field.h"

void fp6_add(fp6_t *out, const fp6_t *a, const fp6_t *b) {
    fp2_add(&out->c0, &a->c0, &b->c0);
    fp2_add(&out->c1, &a->c1, &b->c1);
    fp2_add(&out->c2, &a->c2, &b->c2);
}

void fp6_sub(fp6_t *out, const fp6_t *a, const fp6_t *b) {
    fp2_sub(&out->c0, &a->c0, &b->c0);
    fp2_sub(&out->c1, &a->c1, &b->c1);
    fp2_sub(&out->c2, &a->c2, &b->c2);
}

void fp6_neg(fp6_t *out, const fp6_t *a) {
    fp2_neg(&out->c0, &a->c0);
    fp2_neg(&out->c1, &a->c1);
    fp2_neg(&out->c2, &a->c2);
}

void fp6_mul(fp6_t *out, const fp6_t *a, const fp6_t *b) {
    /* Karatsuba over three coefficients: 6 Fp2 products instead of 9. */
    fp2_t v0, v1, v2, s, t, c0, c1, c2;
    fp2_mul(&v0, &a->c0, &b->c0);
    fp2_mul(&v1, &a->c1, &b->c1);
    fp2_mul(&v2, &a->c2, &b->c2);

    fp2_add(&s, &a->c1, &a->c2);
    fp2_add(&t, &b->c1, &b->c2);
    fp2_mul(&c0, &s, &t);
    fp2_sub(&c0, &c0, &v1);
    fp2_sub(&c0, &c0, &v2);
    fp2_mul_by_xi(&c0, &c0);
    fp2_add(&c0, &c0, &v0);

    fp2_add(&s, &a->c0, &a->c1);
    fp2_add(&t, &b->c0, &b->c1);
    fp2_mul(&c1, &s, &t);
    fp2_sub(&c1, &c1, &v0);
    fp2_sub(&c1, &c1, &v1);
    fp2_mul_by_xi(&s, &v2);
    fp2_add(&c1, &c1, &s);

    fp2_add(&s, &a->c0, &a->c2);
    fp2_add(&t, &b->c0, &b->c2);
    fp2_mul(&c2, &s, &t);
    fp2_sub(&c2, &c2, &v0);
    fp2_sub(&c2, &c2, &v2);
    fp2_add(&c2, &c2, &v1);

    out->c0 = c0;
    out->c1 = c1;
    out->c2 = c2;
}

void fp6_square(fp6_t *out, const fp6_t *a) {
    /* Chung-Hasan SQR2. */
    fp2_t s0, s1, s2, s3, s4, t;
    fp2_square(&s0, &a->c0);
    fp2_mul(&s1, &a->c0, &a->c1);
    fp2_double(&s1, &s1);
    fp2_sub(&t, &a->c0, &a->c1);
    fp2_add(&t, &t, &a->c2);
    fp2_square(&s2, &t);
    fp2_mul(&s3, &a->c1, &a->c2);
    fp2_double(&s3, &s3);
    fp2_square(&s4, &a->c2);

    fp6_t result;
    fp2_mul_by_xi(&t, &s3);
    fp2_add(&result.c0, &s0, &t);
    fp2_mul_by_xi(&t, &s4);
    fp2_add(&result.c1, &s1, &t);
    fp2_add(&t, &s1, &s2);
    fp2_add(&t, &t, &s3);
    fp2_sub(&t, &t, &s0);
    fp2_sub(&result.c2, &t, &s4);
    *out = result;
}

void fp6_mul_by_v(fp6_t *out, const fp6_t *a) {
    fp2_t c0;
    fp2_mul_by_xi(&c0, &a->c2);
    out->c2 = a->c1;
    out->c1 = a->c0;
    out->c0 = c0;
}

/* a * (b0 + b1 v): the shape of one half of a line. */
static void fp6_mul_by_01(fp6_t *out, const fp6_t *a, const fp2_t *b0, const fp2_t *b1) {
    fp2_t a_b0, a_b1, s, t, c0, c1, c2;
    fp2_mul(&a_b0, &a->c0, b0);
    fp2_mul(&a_b1, &a->c1, b1);

    fp2_add(&s, &a->c1, &a->c2);
    fp2_mul(&c0, &s, b1);
    fp2_sub(&c0, &c0, &a_b1);
    fp2_mul_by_xi(&c0, &c0);
    fp2_add(&c0, &c0, &a_b0);

    fp2_add(&s, &a->c0, &a->c2);
    fp2_mul(&c2, &s, b0);
    fp2_sub(&c2, &c2, &a_b0);
    fp2_add(&c2, &c2, &a_b1);

    fp2_add(&s, b0, b1);
    fp2_add(&t, &a->c0, &a->c1);
    fp2_mul(&c1, &s, &t);
    fp2_sub(&c1, &c1, &a_b0);
    fp2_sub(&c1, &c1, &a_b1);

    out->c0 = c0;
    out->c1 = c1;
    out->c2 = c2;
}

static void fp6_mul_by_fp2(fp6_t *out, const fp6_t *a, const fp2_t *b) {
    fp2_mul(&out->c0, &a->c0, b);
    fp2_mul(&out->c1, &a->c1, b);
    fp2_mul(&out->c2, &a->c2, b);
}

void fp6_inverse(fp6_t *out, const fp6_t *a) {
    fp2_t c0, c1, c2, t, norm;
    fp2_square(&c0, &a->c0);
    fp2_mul(&t, &a->c1, &a->c2);
    fp2_mul_by_xi(&t, &t);
    fp2_sub(&c0, &c0, &t);

    fp2_square(&c1, &a->c2);
    fp2_mul_by_xi(&c1, &c1);
    fp2_mul(&t, &a->c0, &a->c1);
    fp2_sub(&c1, &c1, &t);

    fp2_square(&c2, &a->c1);
    fp2_mul(&t, &a->c0, &a->c2);
    fp2_sub(&c2, &c2, &t);

    fp2_mul(&norm, &a->c2, &c1);
    fp2_mul(&t, &a->c1, &c2);
    fp2_add(&norm, &norm, &t);
    fp2_mul_by_xi(&norm, &norm);
    fp2_mul(&t, &a->c0, &c0);
    fp2_add(&norm, &norm, &t);
    fp2_inverse(&norm, &norm);

    fp2_mul(&out->c0, &c0, &norm);
    fp2_mul(&out->c1, &c1, &norm);
    fp2_mul(&out->c2, &c2, &norm);
}

void fp12_set_one(fp12_t *out) {
    memset(out, 0, sizeof *out);
    out->c0.c0.c0 = BN254_FP_ONE;
}

static int fp6_equal(const fp6_t *a, const fp6_t *b) {
    return fp2_equal(&a->c0, &b->c0) && fp2_equal(&a->c1, &b->c1) && fp2_equal(&a->c2, &b->c2);
}

int fp12_equal(const fp12_t *a, const fp12_t *b) { return fp6_equal(&a->c0, &b->c0) && fp6_equal(&a->c1, &b->c1); }

int fp12_is_one(const fp12_t *a) {
    fp12_t one;
    fp12_set_one(&one);
    return fp12_equal(a, &one);
}

void fp12_mul(fp12_t *out, const fp12_t *a, const fp12_t *b) {
    fp6_t t0, t1, s, t;
    fp6_mul(&t0, &a->c0, &b->c0);
    fp6_mul(&t1, &a->c1, &b->c1);
    fp6_add(&s, &a->c0, &a->c1);
    fp6_add(&t, &b->c0, &b->c1);
    fp6_mul(&s, &s, &t);
    fp6_sub(&s, &s, &t0);
    fp6_sub(&out->c1, &s, &t1);
    fp6_mul_by_v(&t1, &t1);
    fp6_add(&out->c0, &t0, &t1);
}

void fp12_square(fp12_t *out, const fp12_t *a) {
    /* (a0 + a1 w)^2 = (a0 + a1)(a0 + v a1) - (1 + v) a0 a1 + 2 a0 a1 w. */
    fp6_t product, s, t;
    fp6_mul(&product, &a->c0, &a->c1);
    fp6_add(&s, &a->c0, &a->c1);
    fp6_mul_by_v(&t, &a->c1);
    fp6_add(&t, &t, &a->c0);
    fp6_mul(&s, &s, &t);
    fp6_sub(&s, &s, &product);
    fp6_mul_by_v(&t, &product);
    fp6_sub(&out->c0, &s, &t);
    fp6_add(&out->c1, &product, &product);
}

void fp12_conjugate(fp12_t *out, const fp12_t *a) {
    out->c0 = a->c0;
    fp6_neg(&out->c1, &a->c1);
}

void fp12_inverse(fp12_t *out, const fp12_t *a) {
    /* 1/(a0 + a1 w) = (a0 - a1 w) / (a0^2 - v a1^2). */
    fp6_t norm, t;
    fp6_square(&norm, &a->c0);
    fp6_square(&t, &a->c1);
    fp6_mul_by_v(&t, &t);
    fp6_sub(&norm, &norm, &t);
    fp6_inverse(&norm, &norm);
    fp6_mul(&out->c0, &a->c0, &norm);
    fp6_mul(&t, &a->c1, &norm);
    fp6_neg(&out->c1, &t);
}

void fp12_frobenius(fp12_t *out, const fp12_t *a, int power) {
    /* Coefficient c of w^k maps to conj^power(c) * xi^(k (p^power - 1) / 6); with
     * v = w^2 the coefficient of v^j in half i sits at k = 2j + i. */
    const fp2_t *in[6] = {&a->c0.c0, &a->c1.c0, &a->c0.c1, &a->c1.c1, &a->c0.c2, &a->c1.c2};
    fp2_t *result[6] = {&out->c0.c0, &out->c1.c0, &out->c0.c1, &out->c1.c1, &out->c0.c2, &out->c1.c2};
    for (int k = 0; k < 6; k++) {
        fp2_t c = *in[k];
        if (power & 1) fp2_conjugate(&c, &c);
        fp2_mul(result[k], &c, &BN254_FROBENIUS[power - 1][k]);
    }
}

void fp12_mul_by_line(fp12_t *out, const fp12_t *a, const fp2_t *c0, const fp2_t *c3, const fp2_t *c4) {
    fp6_t scaled, line_half, sum;
    fp2_t c0_plus_c3;
    fp6_mul_by_fp2(&scaled, &a->c0, c0);
    fp6_mul_by_01(&line_half, &a->c1, c3, c4);
    fp2_add(&c0_plus_c3, c0, c3);
    fp6_add(&sum, &a->c0, &a->c1);
    fp6_mul_by_01(&sum, &sum, &c0_plus_c3, c4);
    fp6_sub(&sum, &sum, &scaled);
    fp6_sub(&out->c1, &sum, &line_half);
    fp6_mul_by_v(&line_half, &line_half);
    fp6_add(&out->c0, &scaled, &line_half);
}

/* Granger-Scott: in the cyclotomic subgroup Fp12 is viewed as Fp4^3 over Fp2 and each
 * Fp4 square costs two Fp2 squarings. */
static void fp4_square(fp2_t *out0, fp2_t *out1, const fp2_t *a, const fp2_t *b) {
    fp2_t product, s, t;
    fp2_mul(&product, a, b);
    fp2_add(&s, a, b);
    fp2_mul_by_xi(&t, b);
    fp2_add(&t, &t, a);
    fp2_mul(&s, &s, &t);
    fp2_sub(&s, &s, &product);
    fp2_mul_by_xi(&t, &product);
    fp2_sub(out0, &s, &t);
    fp2_double(out1, &product);
}

static void triple_minus_double(fp2_t *out, const fp2_t *t, const fp2_t *z) {
    fp2_t r;
    fp2_sub(&r, t, z);
    fp2_double(&r, &r);
    fp2_add(out, &r, t);
}

static void triple_plus_double(fp2_t *out, const fp2_t *t, const fp2_t *z) {
    fp2_t r;
    fp2_add(&r, t, z);
    fp2_double(&r, &r);
    fp2_add(out, &r, t);
}

void fp12_cyclotomic_square(fp12_t *out, const fp12_t *a) {
    fp2_t t0, t1, t2, t3, t4, t5, xi_t5;
    fp4_square(&t0, &t1, &a->c0.c0, &a->c1.c1);
    fp4_square(&t2, &t3, &a->c1.c0, &a->c0.c2);
    fp4_square(&t4, &t5, &a->c0.c1, &a->c1.c2);
    fp2_mul_by_xi(&xi_t5, &t5);
    fp12_t r;
    triple_minus_double(&r.c0.c0, &t0, &a->c0.c0);
    triple_plus_double(&r.c1.c1, &t1, &a->c1.c1);
    triple_plus_double(&r.c1.c0, &xi_t5, &a->c1.c0);
    triple_minus_double(&r.c0.c2, &t4, &a->c0.c2);
    triple_minus_double(&r.c0.c1, &t2, &a->c0.c1);
    triple_plus_double(&r.c1.c2, &t3, &a->c1.c2);
    *out = r;
}
