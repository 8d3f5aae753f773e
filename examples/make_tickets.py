"""Write a CSV of made-up support tickets to practise on: a ``text`` column and a ``label`` of three classes
(``billing``, ``bug``, ``account``), drawn from a fixed seed so the file is the same everywhere.

    python examples/make_tickets.py tickets.csv           # 300 tickets
    python examples/make_tickets.py tickets.csv --n 1000

docs/getting-started.md trains a private model on this file.
"""

from __future__ import annotations

import argparse
import csv
import random

OPENINGS = ["Hi,", "Hello,", "Good morning,", "Urgent:", "Hey team,", ""]
CLOSINGS = ["Thanks.", "Please help.", "Can you look into it?", "Any update?", "Regards.", ""]
ISSUES = {
    "billing": ["I was charged twice for my {plan} plan this month", "my invoice shows the wrong amount",
                "I need a refund for the {plan} subscription I cancelled", "the payment for my order failed",
                "why did my card get billed after the trial ended", "please send a copy of last month's invoice",
                "the price of the {plan} plan went up without notice", "I was billed in the wrong currency"],
    "bug": ["the app crashes when I open the {screen} page", "the {screen} page shows an error after the update",
            "exporting a report freezes the browser", "the {screen} button does nothing on my phone",
            "search returns no results even for exact names", "the dashboard loads forever since yesterday",
            "images on the {screen} page are broken", "notifications arrive twice for every message"],
    "account": ["I cannot log in although my password is right", "please change the email on my account",
                "how do I reset my password", "I want to delete my account and my data",
                "two-factor codes never reach my phone", "my account was locked after too many attempts",
                "I need to add a colleague to our team account", "please merge my two accounts into one"],
}
PLANS = ["Basic", "Pro", "Team", "Business"]
SCREENS = ["settings", "profile", "billing", "reports", "home"]


def tickets(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` tickets ``(text, label)``, the labels in turn, the wording drawn by ``seed``."""
    rng = random.Random(seed)
    labels = list(ISSUES)
    rows = []
    for i in range(n):
        label = labels[i % len(labels)]
        issue = rng.choice(ISSUES[label]).format(plan=rng.choice(PLANS), screen=rng.choice(SCREENS)) + "."
        opening = rng.choice(OPENINGS)
        if not opening.endswith(","):
            issue = issue[0].upper() + issue[1:]
        text = " ".join(part for part in (opening, issue, rng.choice(CLOSINGS)) if part)
        rows.append((text, label))
    rng.shuffle(rows)
    return rows


def main() -> None:
    """Write the CSV named on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="the CSV file to write")
    parser.add_argument("--n", type=int, default=300, help="number of tickets (default 300)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with open(args.out, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows(tickets(args.n, args.seed))
    print(f"wrote {args.n} tickets to {args.out}")


if __name__ == "__main__":
    main()
