"""`sim run loyalty-year`: a year of the loyalty programme on a real hub and handhelds, checked end to end."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_a_year_of_loyalty_adds_up():
    done = subprocess.run([sys.executable, "-m", "simulator", "run", "loyalty-year", "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.stdout, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["ok"], result["problems"]
    assert done.returncode == 0
    checks = result["checks"]
    for name in ("hub_and_handhelds_agree_on_every_sale", "points_never_negative", "liability_equals_card_balances",
                 "hub_cards_equal_cards", "every_upgrade_granted_its_gift_pack_once", "every_job_ran_every_night",
                 "each_coupon_redeemed_at_most_once", "every_coupon_taken_is_redeemed_with_its_sale",
                 "handhelds_said_true_of_coupons", "every_coupon_reached_its_card",
                 "gift_pack_coupons_reached_cards_once", "the_year_saw_it_all"):
        assert checks[name], name
    figures = result["figures"]
    for name in ("members", "sales", "upgrades", "downgrades", "points_expired", "refunds", "topups", "referral_points",
                 "coupons_issued", "coupons_redeemed", "coupon_value_cents", "coupons_refused_at_counter",
                 "gift_pack_coupons"):
        assert figures[name] > 0, name
    assert figures["coupons_redeemed"] <= figures["coupons_issued"]
    assert figures["job_runs"] >= 5 * 365  # five jobs, every night of the year
