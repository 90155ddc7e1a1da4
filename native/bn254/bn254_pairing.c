/* Line formulas follow Costello, Lange and Naehrig (homogeneous projective coordinates on
 * the twist, eprint 2009/615) in the form used for D-type twists; the final exponentiation's
 * hard part follows Devegili, Scott and Dahab (eprint 2007/390). */
#include <stddef.h>

#include "bn254_pairing.h"

typedef struct { fp2_t x, y, z; } g2_projective_t; /* x = X/Z, y = Y/Z */

static void doubling_step(g2_projective_t *t, line_t *line) {
    fp2_t a, b, c, e, f, g, h, i, j, e_squared, tmp;
    fp2_mul(&a, &t->x, &t->y);
    fp2_mul_by_fp(&a, &a, &BN254_FP_TWO_INV);
    fp2_square(&b, &t->y);
    fp2_square(&c, &t->z);
    fp2_double(&tmp, &c);
    fp2_add(&tmp, &tmp, &c);
    fp2_mul(&e, &BN254_TWIST_B, &tmp);
    fp2_double(&f, &e);
    fp2_add(&f, &f, &e);
    fp2_add(&g, &b, &f);
    fp2_mul_by_fp(&g, &g, &BN254_FP_TWO_INV);
    fp2_add(&h, &t->y, &t->z);
    fp2_square(&h, &h);
    fp2_add(&tmp, &b, &c);
    fp2_sub(&h, &h, &tmp);
    fp2_sub(&i, &e, &b);
    fp2_square(&j, &t->x);
    fp2_square(&e_squared, &e);

    fp2_sub(&tmp, &b, &f);
    fp2_mul(&t->x, &a, &tmp);
    fp2_square(&t->y, &g);
    fp2_double(&tmp, &e_squared);
    fp2_add(&tmp, &tmp, &e_squared);
    fp2_sub(&t->y, &t->y, &tmp);
    fp2_mul(&t->z, &b, &h);

    fp2_neg(&line->c0, &h);
    fp2_double(&line->c3, &j);
    fp2_add(&line->c3, &line->c3, &j);
    line->c4 = i;
}

static void addition_step(g2_projective_t *t, const g2_affine_t *q, line_t *line) {
    fp2_t theta, lambda, c, d, e, f, g, h, tmp;
    fp2_mul(&tmp, &q->y, &t->z);
    fp2_sub(&theta, &t->y, &tmp);
    fp2_mul(&tmp, &q->x, &t->z);
    fp2_sub(&lambda, &t->x, &tmp);
    fp2_square(&c, &theta);
    fp2_square(&d, &lambda);
    fp2_mul(&e, &lambda, &d);
    fp2_mul(&f, &t->z, &c);
    fp2_mul(&g, &t->x, &d);
    fp2_add(&h, &e, &f);
    fp2_double(&tmp, &g);
    fp2_sub(&h, &h, &tmp);

    fp2_mul(&t->x, &lambda, &h);
    fp2_sub(&tmp, &g, &h);
    fp2_mul(&tmp, &theta, &tmp);
    fp2_mul(&t->y, &e, &t->y);
    fp2_sub(&t->y, &tmp, &t->y);
    fp2_mul(&t->z, &t->z, &e);

    line->c0 = lambda;
    fp2_neg(&line->c3, &theta);
    fp2_mul(&line->c4, &theta, &q->x);
    fp2_mul(&tmp, &lambda, &q->y);
    fp2_sub(&line->c4, &line->c4, &tmp);
}

void g2_prepare(g2_prepared_t *out, const g2_affine_t *q) {
    g2_projective_t t = {q->x, q->y, {BN254_FP_ONE, {{0, 0, 0, 0}}}};
    g2_affine_t negated, q1, q2;
    g2_negate_affine(&negated, q);
    size_t index = 0;
    for (int digit = BN254_ATE_DIGITS - 2; digit >= 0; digit--) {
        doubling_step(&t, &out->lines[index++]);
        if (BN254_ATE_NAF[digit] == 1) addition_step(&t, q, &out->lines[index++]);
        if (BN254_ATE_NAF[digit] == -1) addition_step(&t, &negated, &out->lines[index++]);
    }
    /* The optimal ate correction: add psi(Q) and -psi^2(Q). */
    g2_psi(&q1, q);
    g2_psi(&q2, &q1);
    fp2_neg(&q2.y, &q2.y);
    addition_step(&t, &q1, &out->lines[index++]);
    addition_step(&t, &q2, &out->lines[index++]);
}

static void evaluate_line(fp12_t *f, const line_t *line, const g1_affine_t *p) {
    fp2_t c0, c3;
    fp2_mul_by_fp(&c0, &line->c0, &p->y);
    fp2_mul_by_fp(&c3, &line->c3, &p->x);
    fp12_mul_by_line(f, f, &c0, &c3, &line->c4);
}

void miller_loop(fp12_t *out, const g1_affine_t *points, const g2_prepared_t *const *prepared, size_t count) {
    fp12_t f;
    fp12_set_one(&f);
    size_t index = 0;
    for (int digit = BN254_ATE_DIGITS - 2; digit >= 0; digit--) {
        if (digit != BN254_ATE_DIGITS - 2) fp12_square(&f, &f);
        for (size_t k = 0; k < count; k++) {
            if (!points[k].infinity) evaluate_line(&f, &prepared[k]->lines[index], &points[k]);
        }
        index++;
        if (BN254_ATE_NAF[digit] != 0) {
            for (size_t k = 0; k < count; k++) {
                if (!points[k].infinity) evaluate_line(&f, &prepared[k]->lines[index], &points[k]);
            }
            index++;
        }
    }
    for (int step = 0; step < 2; step++, index++) {
        for (size_t k = 0; k < count; k++) {
            if (!points[k].infinity) evaluate_line(&f, &prepared[k]->lines[index], &points[k]);
        }
    }
    *out = f;
}

void cyclotomic_pow(fp12_t *out, const fp12_t *a, const uint64_t *exponent, size_t limb_count) {
    fp12_t result;
    fp12_set_one(&result);
    int started = 0;
    for (size_t limb = limb_count; limb-- > 0;) {
        for (int bit = 63; bit >= 0; bit--) {
            if (started) fp12_cyclotomic_square(&result, &result);
            if ((exponent[limb] >> bit) & 1) {
                fp12_mul(&result, &result, a);
                started = 1;
            }
        }
    }
    *out = result;
}

/* a^x through the signed digits of x; in the cyclotomic subgroup a^-1 is the conjugate. */
static void pow_by_x(fp12_t *out, const fp12_t *a) {
    fp12_t result = *a, inverse;
    fp12_conjugate(&inverse, a);
    for (int digit = BN254_X_NAF_DIGITS - 2; digit >= 0; digit--) {
        fp12_cyclotomic_square(&result, &result);
        if (BN254_X_NAF[digit] == 1) fp12_mul(&result, &result, a);
        if (BN254_X_NAF[digit] == -1) fp12_mul(&result, &result, &inverse);
    }
    *out = result;
}

void final_exponentiation(fp12_t *out, const fp12_t *f) {
    fp12_t t0, t1, t2, inverse;
    /* Easy part: f^((p^6 - 1)(p^2 + 1)) lands in the cyclotomic subgroup. */
    fp12_conjugate(&t1, f);
    fp12_inverse(&inverse, f);
    fp12_mul(&t1, &t1, &inverse);
    fp12_frobenius(&t2, &t1, 2);
    fp12_mul(&t1, &t1, &t2);

    /* Hard part: (p^4 - p^2 + 1) / r written in base p with coefficients polynomial in x. */
    fp12_t f_p, f_p2, f_p3, f_x, f_x2, f_x3, f_x2_p, f_x3_p;
    fp12_t y0, y1, y2, y3, y4, y5, y6;
    fp12_frobenius(&f_p, &t1, 1);
    fp12_frobenius(&f_p2, &t1, 2);
    fp12_frobenius(&f_p3, &t1, 3);
    pow_by_x(&f_x, &t1);
    pow_by_x(&f_x2, &f_x);
    pow_by_x(&f_x3, &f_x2);
    fp12_frobenius(&y3, &f_x, 1);
    fp12_frobenius(&f_x2_p, &f_x2, 1);
    fp12_frobenius(&f_x3_p, &f_x3, 1);
    fp12_frobenius(&y2, &f_x2, 2);

    fp12_mul(&y0, &f_p, &f_p2);
    fp12_mul(&y0, &y0, &f_p3);
    fp12_conjugate(&y1, &t1);
    fp12_conjugate(&y5, &f_x2);
    fp12_conjugate(&y3, &y3);
    fp12_mul(&y4, &f_x, &f_x2_p);
    fp12_conjugate(&y4, &y4);
    fp12_mul(&y6, &f_x3, &f_x3_p);
    fp12_conjugate(&y6, &y6);

    fp12_cyclotomic_square(&t0, &y6);
    fp12_mul(&t0, &t0, &y4);
    fp12_mul(&t0, &t0, &y5);
    fp12_mul(&t1, &y3, &y5);
    fp12_mul(&t1, &t1, &t0);
    fp12_mul(&t0, &t0, &y2);
    fp12_cyclotomic_square(&t1, &t1);
    fp12_mul(&t1, &t1, &t0);
    fp12_cyclotomic_square(&t1, &t1);
    fp12_mul(&t0, &t1, &y1);
    fp12_mul(&t1, &t1, &y0);
    fp12_cyclotomic_square(&t0, &t0);
    fp12_mul(&t0, &t0, &t1);
    *out = t0;
}
