"""A deterministic, varied text corpus for the benchmarks: prose, code, many scripts, emoji,
numbers and long whitespace runs, in documents of a few hundred to a few thousand characters."""

from __future__ import annotations

import random

PIECES = [
    "The quarterly budget review showed that most of the spend went to long prompts. ",
    "Each team keeps its own limit, and alerts fire at 75, 90 and 100 percent. ",
    "def settle(reservation, actual):\n    return reservation.amount - actual.cost\n\n",
    "for (let i = 0; i < rows.length; i++) { total += rows[i].cost; }\n",
    "SELECT team, SUM(cost_total) FROM usage_events GROUP BY team ORDER BY 2 DESC;\n",
    "請求書の金額は来月から変わります。予算の上限に注意してください。",
    "Бюджет команды почти исчерпан, осталось всего двенадцать долларов. ",
    "الميزانية الشهرية تنتهي في نهاية الشهر، يرجى المراجعة. ",
    "बजट की सीमा पार होने पर ईमेल भेजा जाता है। ",
    "예산 한도에 도달하면 요청이 차단됩니다. ",
    "🚀 Launch day! 🎉 Costs are down 30% 📉 thanks to caching ✨ ",
    "Invoice 2026-11-25: 1,234,567 tokens x $2.50 / 1M = $3.086418 ",
    "        \n\n\t\t    indented   block   with    irregular     spacing\n",
    '{"model": "gpt-4o", "usage": {"prompt_tokens": 1200, "completion_tokens": 340}}\n',
    "I'm sure they'll say we've done it; you're right, it's DONE. ",
]


def make_corpus(documents: int = 2000, seed: int = 2026) -> list[str]:
    rng = random.Random(seed)
    return [
        "".join(rng.choice(PIECES) for _ in range(rng.randint(3, 40))) for _ in range(documents)
    ]
