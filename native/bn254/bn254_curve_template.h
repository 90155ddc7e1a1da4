/* Short Weierstrass (a = 0) group law in Jacobian coordinates, written once for G1 and G2.
 * The includer defines CURVE(name), FIELD(name), field_t, affine_t, jacobian_t,
 * CURVE_B (a pointer to b) and FIELD_ONE (a pointer to 1). */

int CURVE(is_on_curve)(const affine_t *p) {
    if (p->infinity) return 1;
    field_t lhs, rhs;
    FIELD(square)(&lhs, &p->y);
    FIELD(square)(&rhs, &p->x);
    FIELD(mul)(&rhs, &rhs, &p->x);
    FIELD(add)(&rhs, &rhs, CURVE_B);
    return FIELD(equal)(&lhs, &rhs);
}

void CURVE(set_infinity)(jacobian_t *out) {
    memset(out, 0, sizeof *out);
    out->x = *FIELD_ONE;
    out->y = *FIELD_ONE;
}

int CURVE(is_infinity)(const jacobian_t *p) { return FIELD(is_zero)(&p->z); }

void CURVE(from_affine)(jacobian_t *out, const affine_t *p) {
    if (p->infinity) {
        CURVE(set_infinity)(out);
        return;
    }
    out->x = p->x;
    out->y = p->y;
    out->z = *FIELD_ONE;
}

void CURVE(to_affine)(affine_t *out, const jacobian_t *p) {
    if (CURVE(is_infinity)(p)) {
        memset(out, 0, sizeof *out);
        out->infinity = 1;
        return;
    }
    field_t z_inv, z_inv2, z_inv3;
    FIELD(inverse)(&z_inv, &p->z);
    FIELD(square)(&z_inv2, &z_inv);
    FIELD(mul)(&z_inv3, &z_inv2, &z_inv);
    FIELD(mul)(&out->x, &p->x, &z_inv2);
    FIELD(mul)(&out->y, &p->y, &z_inv3);
    out->infinity = 0;
}

void CURVE(negate_affine)(affine_t *out, const affine_t *p) {
    *out = *p;
    FIELD(neg)(&out->y, &p->y);
}

/* dbl-2009-l */
void CURVE(double)(jacobian_t *out, const jacobian_t *p) {
    if (CURVE(is_infinity)(p)) {
        *out = *p;
        return;
    }
    field_t a, b, c, d, e, f, t;
    FIELD(square)(&a, &p->x);
    FIELD(square)(&b, &p->y);
    FIELD(square)(&c, &b);
    FIELD(add)(&d, &p->x, &b);
    FIELD(square)(&d, &d);
    FIELD(sub)(&d, &d, &a);
    FIELD(sub)(&d, &d, &c);
    FIELD(double)(&d, &d);
    FIELD(double)(&e, &a);
    FIELD(add)(&e, &e, &a);
    FIELD(square)(&f, &e);
    jacobian_t r;
    FIELD(mul)(&r.z, &p->y, &p->z);
    FIELD(double)(&r.z, &r.z);
    FIELD(double)(&t, &d);
    FIELD(sub)(&r.x, &f, &t);
    FIELD(sub)(&t, &d, &r.x);
    FIELD(mul)(&r.y, &e, &t);
    FIELD(double)(&c, &c);
    FIELD(double)(&c, &c);
    FIELD(double)(&c, &c);
    FIELD(sub)(&r.y, &r.y, &c);
    *out = r;
}

/* add-2007-bl, with the doubling and inverse cases the formula cannot handle. */
void CURVE(add)(jacobian_t *out, const jacobian_t *p, const jacobian_t *q) {
    if (CURVE(is_infinity)(p)) {
        *out = *q;
        return;
    }
    if (CURVE(is_infinity)(q)) {
        *out = *p;
        return;
    }
    field_t z1z1, z2z2, u1, u2, s1, s2, h, i, j, rr, v, t;
    FIELD(square)(&z1z1, &p->z);
    FIELD(square)(&z2z2, &q->z);
    FIELD(mul)(&u1, &p->x, &z2z2);
    FIELD(mul)(&u2, &q->x, &z1z1);
    FIELD(mul)(&s1, &p->y, &q->z);
    FIELD(mul)(&s1, &s1, &z2z2);
    FIELD(mul)(&s2, &q->y, &p->z);
    FIELD(mul)(&s2, &s2, &z1z1);
    FIELD(sub)(&h, &u2, &u1);
    FIELD(sub)(&rr, &s2, &s1);
    if (FIELD(is_zero)(&h)) {
        if (FIELD(is_zero)(&rr)) {
            CURVE(double)(out, p);
        } else {
            CURVE(set_infinity)(out);
        }
        return;
    }
    FIELD(double)(&rr, &rr);
    FIELD(double)(&i, &h);
    FIELD(square)(&i, &i);
    FIELD(mul)(&j, &h, &i);
    FIELD(mul)(&v, &u1, &i);
    jacobian_t r;
    FIELD(square)(&r.x, &rr);
    FIELD(sub)(&r.x, &r.x, &j);
    FIELD(double)(&t, &v);
    FIELD(sub)(&r.x, &r.x, &t);
    FIELD(sub)(&t, &v, &r.x);
    FIELD(mul)(&r.y, &rr, &t);
    FIELD(mul)(&t, &s1, &j);
    FIELD(double)(&t, &t);
    FIELD(sub)(&r.y, &r.y, &t);
    FIELD(add)(&r.z, &p->z, &q->z);
    FIELD(square)(&r.z, &r.z);
    FIELD(sub)(&r.z, &r.z, &z1z1);
    FIELD(sub)(&r.z, &r.z, &z2z2);
    FIELD(mul)(&r.z, &r.z, &h);
    *out = r;
}

/* madd-2007-bl */
void CURVE(add_affine)(jacobian_t *out, const jacobian_t *p, const affine_t *q) {
    if (q->infinity) {
        *out = *p;
        return;
    }
    if (CURVE(is_infinity)(p)) {
        CURVE(from_affine)(out, q);
        return;
    }
    field_t z1z1, u2, s2, h, hh, i, j, rr, v, t;
    FIELD(square)(&z1z1, &p->z);
    FIELD(mul)(&u2, &q->x, &z1z1);
    FIELD(mul)(&s2, &q->y, &p->z);
    FIELD(mul)(&s2, &s2, &z1z1);
    FIELD(sub)(&h, &u2, &p->x);
    FIELD(sub)(&rr, &s2, &p->y);
    if (FIELD(is_zero)(&h)) {
        if (FIELD(is_zero)(&rr)) {
            CURVE(double)(out, p);
        } else {
            CURVE(set_infinity)(out);
        }
        return;
    }
    FIELD(double)(&rr, &rr);
    FIELD(square)(&hh, &h);
    FIELD(double)(&i, &hh);
    FIELD(double)(&i, &i);
    FIELD(mul)(&j, &h, &i);
    FIELD(mul)(&v, &p->x, &i);
    jacobian_t r;
    FIELD(square)(&r.x, &rr);
    FIELD(sub)(&r.x, &r.x, &j);
    FIELD(double)(&t, &v);
    FIELD(sub)(&r.x, &r.x, &t);
    FIELD(sub)(&t, &v, &r.x);
    FIELD(mul)(&r.y, &rr, &t);
    FIELD(mul)(&t, &p->y, &j);
    FIELD(double)(&t, &t);
    FIELD(sub)(&r.y, &r.y, &t);
    FIELD(add)(&r.z, &p->z, &h);
    FIELD(square)(&r.z, &r.z);
    FIELD(sub)(&r.z, &r.z, &z1z1);
    FIELD(sub)(&r.z, &r.z, &hh);
    *out = r;
}

void CURVE(scalar_mul)(jacobian_t *out, const affine_t *p, const uint64_t scalar[4]) {
    jacobian_t acc;
    CURVE(set_infinity)(&acc);
    for (int bit = 255; bit >= 0; bit--) {
        CURVE(double)(&acc, &acc);
        if ((scalar[bit / 64] >> (bit % 64)) & 1) CURVE(add_affine)(&acc, &acc, p);
    }
    *out = acc;
}

int CURVE(equal)(const jacobian_t *p, const jacobian_t *q) {
    int p_inf = CURVE(is_infinity)(p), q_inf = CURVE(is_infinity)(q);
    if (p_inf || q_inf) return p_inf && q_inf;
    field_t z1z1, z2z2, a, b;
    FIELD(square)(&z1z1, &p->z);
    FIELD(square)(&z2z2, &q->z);
    FIELD(mul)(&a, &p->x, &z2z2);
    FIELD(mul)(&b, &q->x, &z1z1);
    if (!FIELD(equal)(&a, &b)) return 0;
    FIELD(mul)(&a, &p->y, &z2z2);
    FIELD(mul)(&a, &a, &q->z);
    FIELD(mul)(&b, &q->y, &z1z1);
    FIELD(mul)(&b, &b, &p->z);
    return FIELD(equal)(&a, &b);
}

/* Many affine conversions for one inversion (Montgomery's trick); 0 when out of memory. */
int CURVE(batch_to_affine)(affine_t *out, const jacobian_t *points, size_t count) {
    if (count == 0) return 1;
    field_t *prefix = malloc(count * sizeof *prefix);
    if (prefix == NULL) return 0;
    field_t running = *FIELD_ONE;
    for (size_t i = 0; i < count; i++) {
        prefix[i] = running;
        if (!CURVE(is_infinity)(&points[i])) FIELD(mul)(&running, &running, &points[i].z);
    }
    FIELD(inverse)(&running, &running);
    for (size_t i = count; i-- > 0;) {
        if (CURVE(is_infinity)(&points[i])) {
            memset(&out[i], 0, sizeof out[i]);
            out[i].infinity = 1;
            continue;
        }
        field_t z_inv, z_inv2, z_inv3;
        FIELD(mul)(&z_inv, &running, &prefix[i]);
        FIELD(mul)(&running, &running, &points[i].z);
        FIELD(square)(&z_inv2, &z_inv);
        FIELD(mul)(&z_inv3, &z_inv2, &z_inv);
        FIELD(mul)(&out[i].x, &points[i].x, &z_inv2);
        FIELD(mul)(&out[i].y, &points[i].y, &z_inv3);
        out[i].infinity = 0;
    }
    free(prefix);
    return 1;
}
