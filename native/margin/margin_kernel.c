/*
 * crossclear margin kernel. See margin_kernel.h for the contract and
 * docs/margin-methodology.md for the methodology this implements.
 *
 * Layout of the caller's workspace (doubles):
 *   per instrument: mark, unit initial, unit maintenance, weighted scenario P&L per unit
 *   per asset:      volatility haircut part, concentration factor (k * P / depth)
 *   scratch reused by every account: asset totals, per-chain sums, per-underlying
 *   scenario P&L, plus "stamps" that mark which scratch rows the current account touched,
 *   so nothing is cleared for assets, chains or underlyings an account does not hold.
 */
#include "margin_kernel.h"

#include <math.h>
#include <stddef.h>

typedef struct {
    int64_t scenario_count;
    double *instrument_mark;
    double *instrument_unit_im;
    double *instrument_unit_mm;
    double *instrument_scenario_pnl; /* instruments x scenarios */
    double *asset_vol_haircut;
    double *asset_concentration;
    double *asset_total;
    double *asset_stamp;
    double *chain_im;
    double *chain_upnl;
    double *chain_stamp;
    double *chain_touched;
    double *underlying_pnl; /* underlyings x scenarios */
    double *underlying_notional;
    double *underlying_stamp;
    double *underlying_touched;
} workspace_view;

int64_t margin_scenario_count(const margin_params *params) {
    return (int64_t)params->price_steps * params->vol_shock_count + 2;
}

int64_t margin_workspace_doubles(const margin_params *params, const margin_market *market,
                                 const margin_instruments *instruments) {
    int64_t scenarios = margin_scenario_count(params);
    return instruments->count * (3 + scenarios) + market->asset_count * 4 +
           market->chain_count * 4 + market->underlying_count * (scenarios + 3);
}

static workspace_view view_workspace(const margin_params *params, const margin_market *market,
                                     const margin_instruments *instruments, double *workspace) {
    workspace_view view;
    int64_t instruments_count = instruments->count;
    double *cursor = workspace;
    view.scenario_count = margin_scenario_count(params);
    view.instrument_mark = cursor; cursor += instruments_count;
    view.instrument_unit_im = cursor; cursor += instruments_count;
    view.instrument_unit_mm = cursor; cursor += instruments_count;
    view.instrument_scenario_pnl = cursor; cursor += instruments_count * view.scenario_count;
    view.asset_vol_haircut = cursor; cursor += market->asset_count;
    view.asset_concentration = cursor; cursor += market->asset_count;
    view.asset_total = cursor; cursor += market->asset_count;
    view.asset_stamp = cursor; cursor += market->asset_count;
    view.chain_im = cursor; cursor += market->chain_count;
    view.chain_upnl = cursor; cursor += market->chain_count;
    view.chain_stamp = cursor; cursor += market->chain_count;
    view.chain_touched = cursor; cursor += market->chain_count;
    view.underlying_pnl = cursor; cursor += market->underlying_count * view.scenario_count;
    view.underlying_notional = cursor; cursor += market->underlying_count;
    view.underlying_stamp = cursor; cursor += market->underlying_count;
    view.underlying_touched = cursor;
    return view;
}

static double normal_cdf(double x) { return 0.5 * erfc(-x * 0.70710678118654752440); }

/* Black-76 with zero rates and forward = spot; intrinsic value when there is no time
 * value left to price (expired, zero vol) or the shocked price reached zero. */
static double instrument_value(int32_t kind, double price, double vol, double strike,
                               double expiry_years) {
    if (kind == MARGIN_KIND_PERP) return price;
    if (expiry_years <= 0.0 || vol <= 0.0 || price <= 0.0) {
        if (kind == MARGIN_KIND_CALL) return price > strike ? price - strike : 0.0;
        return strike > price ? strike - price : 0.0;
    }
    double total_vol = vol * sqrt(expiry_years);
    double d1 = (log(price / strike) + 0.5 * total_vol * total_vol) / total_vol;
    double d2 = d1 - total_vol;
    if (kind == MARGIN_KIND_CALL) return price * normal_cdf(d1) - strike * normal_cdf(d2);
    return strike * normal_cdf(-d2) - price * normal_cdf(-d1);
}

static int params_valid(const margin_params *params) {
    return params->price_steps >= 2 && params->vol_shock_count >= 1 &&
           params->vol_shocks != NULL;
}

int margin_prepare(const margin_params *params, const margin_market *market,
                   const margin_instruments *instruments, double *workspace,
                   int64_t *error_index) {
    if (!params_valid(params)) {
        *error_index = 0;
        return MARGIN_ERROR_BAD_PARAMS;
    }
    workspace_view view = view_workspace(params, market, instruments, workspace);
    const int64_t scenarios = view.scenario_count;
    const double step_denominator = (double)(params->price_steps - 1);

    for (int64_t i = 0; i < instruments->count; i++) {
        int32_t underlying = instruments->underlying[i];
        int32_t kind = instruments->kind[i];
        if (underlying < 0 || underlying >= market->underlying_count) {
            *error_index = i;
            return MARGIN_ERROR_INSTRUMENT_UNDERLYING;
        }
        if (kind < MARGIN_KIND_PERP || kind > MARGIN_KIND_PUT) {
            *error_index = i;
            return MARGIN_ERROR_INSTRUMENT_KIND;
        }
        double price = market->underlying_price[underlying];
        double vol = market->underlying_vol[underlying];
        double range = market->underlying_scan_range[underlying];
        double strike = instruments->strike[i];
        double expiry = instruments->expiry_years[i];
        double mark = instrument_value(kind, price, vol, strike, expiry);
        view.instrument_mark[i] = mark;

        if (kind == MARGIN_KIND_PERP) {
            view.instrument_unit_im[i] = params->perp_im_rate * price;
            view.instrument_unit_mm[i] = params->perp_mm_rate * price;
        } else {
            /* Per unit of a short option; long options carry no standard requirement. */
            double out_of_the_money = kind == MARGIN_KIND_CALL ? fmax(0.0, strike - price)
                                                               : fmax(0.0, price - strike);
            view.instrument_unit_im[i] =
                fmax(params->short_option_im_rate * price - out_of_the_money,
                     params->short_option_im_floor_rate * price) + mark;
            view.instrument_unit_mm[i] = params->short_option_mm_rate * price + mark;
        }

        double *row = view.instrument_scenario_pnl + i * scenarios;
        int64_t s = 0;
        for (int32_t step = 0; step < params->price_steps; step++) {
            double move = -range + 2.0 * range * (double)step / step_denominator;
            double shocked_price = fmax(0.0, price * (1.0 + move));
            for (int32_t v = 0; v < params->vol_shock_count; v++) {
                double shocked_vol = vol * (1.0 + params->vol_shocks[v]);
                row[s++] = instrument_value(kind, shocked_price, shocked_vol, strike, expiry) - mark;
            }
        }
        for (int side = -1; side <= 1; side += 2) {
            double move = (double)side * params->extreme_move * range;
            double shocked_price = fmax(0.0, price * (1.0 + move));
            row[s++] = params->extreme_weight *
                       (instrument_value(kind, shocked_price, vol, strike, expiry) - mark);
        }
    }

    const double liquidation_horizon = sqrt(params->haircut_liq_days);
    for (int64_t a = 0; a < market->asset_count; a++) {
        view.asset_vol_haircut[a] = market->asset_base_haircut[a] +
                                    params->haircut_z * market->asset_daily_vol[a] * liquidation_horizon;
        view.asset_concentration[a] =
            params->haircut_conc_k * market->asset_price[a] / market->asset_depth[a];
    }
    return MARGIN_OK;
}

/* Indices and offsets of one account's rows: a bad index would read outside the tables. */
static int check_account(const margin_market *market, const margin_instruments *instruments,
                         const margin_book *book, int64_t account, int64_t *error_index) {
    const int64_t position_begin = book->position_offsets[account];
    const int64_t position_end = book->position_offsets[account + 1];
    const int64_t collateral_begin = book->collateral_offsets[account];
    const int64_t collateral_end = book->collateral_offsets[account + 1];
    if (position_begin < 0 || position_end < position_begin || collateral_begin < 0 ||
        collateral_end < collateral_begin) {
        *error_index = account;
        return MARGIN_ERROR_OFFSETS;
    }
    for (int64_t p = position_begin; p < position_end; p++) {
        if (book->position_instrument[p] < 0 || book->position_instrument[p] >= instruments->count) {
            *error_index = p;
            return MARGIN_ERROR_POSITION_INSTRUMENT;
        }
        if (book->position_chain[p] < 0 || book->position_chain[p] >= market->chain_count) {
            *error_index = p;
            return MARGIN_ERROR_POSITION_CHAIN;
        }
    }
    for (int64_t e = collateral_begin; e < collateral_end; e++) {
        if (book->collateral_asset[e] < 0 || book->collateral_asset[e] >= market->asset_count) {
            *error_index = e;
            return MARGIN_ERROR_COLLATERAL_ASSET;
        }
    }
    return MARGIN_OK;
}

static double collateral_value(const margin_params *params, const margin_market *market,
                               const margin_book *book, const workspace_view *view,
                               int64_t account, double stamp) {
    const int64_t begin = book->collateral_offsets[account];
    const int64_t end = book->collateral_offsets[account + 1];
    /* Haircuts depend on the account's total of each asset across chains. */
    for (int64_t e = begin; e < end; e++) {
        int32_t asset = book->collateral_asset[e];
        if (view->asset_stamp[asset] != stamp) {
            view->asset_stamp[asset] = stamp;
            view->asset_total[asset] = 0.0;
        }
        view->asset_total[asset] += book->collateral_amount[e];
    }
    double value = 0.0;
    for (int64_t e = begin; e < end; e++) {
        int32_t asset = book->collateral_asset[e];
        double price = market->asset_price[asset];
        double haircut = fmin(params->haircut_max,
                              view->asset_vol_haircut[asset] +
                                  view->asset_concentration[asset] * view->asset_total[asset]);
        value += book->collateral_amount[e] * price * (1.0 - haircut);
    }
    return value;
}

/* The hot loop: built twice (AVX2 and baseline x86-64) and picked at load time, so a portable
 * build still uses the wider vectors where the CPU has them. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("avx2", "default")))
#endif
static void account_margin(const margin_params *params, const margin_market *market,
                           const margin_instruments *instruments, const margin_book *book,
                           const workspace_view *view, int64_t account, double stamp,
                           margin_outputs *outputs) {
    const int64_t scenarios = view->scenario_count;
    int64_t chains_touched = 0;
    int64_t underlyings_touched = 0;
    double upnl = 0.0, im = 0.0, mm = 0.0, isolated_required = 0.0;

    for (int64_t p = book->position_offsets[account]; p < book->position_offsets[account + 1]; p++) {
        const int32_t instrument = book->position_instrument[p];
        const int32_t kind = instruments->kind[instrument];
        const int32_t underlying = instruments->underlying[instrument];
        const int32_t chain = book->position_chain[p];
        const double qty = book->position_qty[p];
        const double size = fabs(qty);
        const double position_upnl = qty * (view->instrument_mark[instrument] - book->position_entry[p]);
        double position_im = 0.0, position_mm = 0.0;
        if (kind == MARGIN_KIND_PERP || qty < 0.0) {
            position_im = size * view->instrument_unit_im[instrument];
            position_mm = size * view->instrument_unit_mm[instrument];
        }
        upnl += position_upnl;
        im += position_im;
        mm += position_mm;
        isolated_required += fmax(0.0, position_im - position_upnl);

        if (view->chain_stamp[chain] != stamp) {
            view->chain_stamp[chain] = stamp;
            view->chain_im[chain] = 0.0;
            view->chain_upnl[chain] = 0.0;
            view->chain_touched[chains_touched++] = (double)chain;
        }
        view->chain_im[chain] += position_im;
        view->chain_upnl[chain] += position_upnl;

        double *restrict pnl = view->underlying_pnl + (int64_t)underlying * scenarios;
        if (view->underlying_stamp[underlying] != stamp) {
            view->underlying_stamp[underlying] = stamp;
            view->underlying_notional[underlying] = 0.0;
            for (int64_t s = 0; s < scenarios; s++) pnl[s] = 0.0;
            view->underlying_touched[underlyings_touched++] = (double)underlying;
        }
        view->underlying_notional[underlying] += size;
        const double *restrict unit_pnl = view->instrument_scenario_pnl + (int64_t)instrument * scenarios;
        for (int64_t s = 0; s < scenarios; s++) pnl[s] += qty * unit_pnl[s];
    }

    double siloed_required = 0.0;
    for (int64_t k = 0; k < chains_touched; k++) {
        int64_t chain = (int64_t)view->chain_touched[k];
        siloed_required += fmax(0.0, view->chain_im[chain] - view->chain_upnl[chain]);
    }

    double portfolio_mm = 0.0;
    for (int64_t k = 0; k < underlyings_touched; k++) {
        int64_t underlying = (int64_t)view->underlying_touched[k];
        const double *pnl = view->underlying_pnl + underlying * scenarios;
        double worst_loss = 0.0;
        for (int64_t s = 0; s < scenarios; s++) worst_loss = fmax(worst_loss, -pnl[s]);
        double floor = params->pm_floor_rate * view->underlying_notional[underlying] *
                       market->underlying_price[underlying];
        portfolio_mm += fmax(worst_loss, floor);
    }
    const double portfolio_im = params->im_multiplier * portfolio_mm;

    const double collateral = collateral_value(params, market, book, view, account, stamp);
    const double equity = collateral + upnl;
    double *row_im = outputs->im + account * MARGIN_MODE_COUNT;
    double *row_mm = outputs->mm + account * MARGIN_MODE_COUNT;
    double *row_required = outputs->required + account * MARGIN_MODE_COUNT;
    for (int mode = 0; mode < MARGIN_MODE_PORTFOLIO; mode++) {
        row_im[mode] = im;
        row_mm[mode] = mm;
    }
    row_required[MARGIN_MODE_ISOLATED] = isolated_required;
    row_required[MARGIN_MODE_CROSS_SILOED] = siloed_required;
    row_required[MARGIN_MODE_CROSS] = fmax(0.0, im - upnl);
    row_im[MARGIN_MODE_PORTFOLIO] = portfolio_im;
    row_mm[MARGIN_MODE_PORTFOLIO] = portfolio_mm;
    row_required[MARGIN_MODE_PORTFOLIO] = fmax(0.0, portfolio_im - upnl);

    outputs->collateral_value[account] = collateral;
    outputs->upnl[account] = upnl;
    outputs->equity[account] = equity;
    outputs->health[account] = portfolio_mm == 0.0 ? NAN : equity / portfolio_mm;
    outputs->liquidatable[account] = equity < portfolio_mm ? 1 : 0;
}

int margin_compute(const margin_params *params, const margin_market *market,
                   const margin_instruments *instruments, const margin_book *book,
                   double *workspace, const int64_t *account_subset, int64_t subset_count,
                   margin_outputs *outputs, int64_t *error_index) {
    if (!params_valid(params)) {
        *error_index = 0;
        return MARGIN_ERROR_BAD_PARAMS;
    }
    /* Validate every account this call visits before writing any output, so a bad row
     * leaves the outputs exactly as they were. */
    const int64_t visits = account_subset == NULL ? book->account_count : subset_count;
    for (int64_t k = 0; k < visits; k++) {
        int64_t account = account_subset == NULL ? k : account_subset[k];
        if (account < 0 || account >= book->account_count) {
            *error_index = k;
            return MARGIN_ERROR_ACCOUNT_SUBSET;
        }
        int status = check_account(market, instruments, book, account, error_index);
        if (status != MARGIN_OK) return status;
    }

    workspace_view view = view_workspace(params, market, instruments, workspace);
    /* A stamp is the number of the visit that last touched a scratch row: unique per visit,
     * so a row is reset the first time each visit touches it, whatever the visiting order
     * (subsets may be unsorted or repeat accounts). Visit numbers stay far below 2^53. */
    for (int64_t a = 0; a < market->asset_count; a++) view.asset_stamp[a] = -1.0;
    for (int64_t c = 0; c < market->chain_count; c++) view.chain_stamp[c] = -1.0;
    for (int64_t u = 0; u < market->underlying_count; u++) view.underlying_stamp[u] = -1.0;
    for (int64_t k = 0; k < visits; k++) {
        int64_t account = account_subset == NULL ? k : account_subset[k];
        account_margin(params, market, instruments, book, &view, account, (double)k, outputs);
    }
    return MARGIN_OK;
}
