"""Issue 18, point 5 (integrity): after `DELETE FROM purchases` the journal still holds every
notification, so `receiptd replay` must report every purchase missing (exit 1), `--fix` must
restore exactly the rows there were (state, view columns, owner), and a later replay must
find nothing (exit 0). Before, replay re-derived only the rows that exist: "0 purchases
checked", exit 0. Over the command's entry point, as an operator runs it."""

from __future__ import annotations

from services.replay import purchase_ref
from tests.e2e import replay_helpers
from tests.e2e.replay_helpers import LINE, SUMMARY, query, realistic_mix, snapshot

google_keys = replay_helpers.google_keys
fake_play = replay_helpers.fake_play
fake_api = replay_helpers.fake_api
replay_ca = replay_helpers.replay_ca
replay_api_key = replay_helpers.replay_api_key
stores = replay_helpers.stores
command = replay_helpers.command


async def test_delete_from_purchases_is_reported_then_restored_exactly(
    stores, command, capsys
) -> None:
    await realistic_mix(stores)
    url = stores.database_url
    before = await snapshot(url)
    lost = str(len(before))
    await query(url, "DELETE FROM purchases")

    code, out, _ = await command(capsys=capsys)

    assert code == 1
    *lines, summary = out
    found = [LINE.match(line) for line in lines]
    assert all(found), lines
    assert {m.group(4) for m in found} == {"missing"}
    assert sorted(m.group(2) for m in found) == sorted(purchase_ref(pid) for _s, pid in before)
    assert {m.group(3) for m in found} == {row["app_user_id"] or "-" for row in before.values()}
    assert SUMMARY.match(summary).group(1, 2, 3, 4, 5) == (lost, "0", lost, "0", "0")
    assert "tok-" not in "\n".join(out)  # Play tokens are bearer secrets: one-way refs only

    code, out, _ = await command("--fix", capsys=capsys)

    assert code == 0
    *lines, summary = out
    assert {LINE.match(line).group(4) for line in lines} == {"recreated"}
    assert SUMMARY.match(summary).group(3, 5) == (lost, lost)
    assert await snapshot(url) == before

    code, out, _ = await command(capsys=capsys)
    assert (code, len(out)) == (0, 1)
    assert SUMMARY.match(out[0]).group(1, 2, 3, 4) == (lost, "0", "0", "0")
