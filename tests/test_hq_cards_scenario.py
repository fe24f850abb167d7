"""`sim run hq-cards`: HQ's card life cycle end to end, desk reader to handhelds and back to the ledger."""

from tests.test_sync_scenarios import sim_run


def test_hq_decisions_reach_the_handhelds_and_the_cards():
    result = sim_run("hq-cards", "--devices", "2")
    assert result["ok"], result["problems"]
    checks = result["checks"]
    for name in ("lost_card_refused_after_sync", "topup_applied_once", "replacement_carries_balance_and_points",
                 "next_sale_uses_new_price", "hub_ledger_matches_cards"):
        assert checks[name], name
    assert result["figures"]["cards_issued"] == 3 and result["figures"]["sales"] > 0
