#!/usr/bin/env python3
"""Writes a CSV of N leads for `leadrank import`, for the import benchmark.

    python3 tests/bench/import_csv.py 100000 imp > /tmp/leads.csv
    leadrank demo --tenant imp --leads 0       # the tenant, its owner, managers and reps
    /usr/bin/time -v leadrank import --tenant imp /tmp/leads.csv

Owners are the demo tenant's reps (rep1..rep20@<slug>.example); about 12%
of the leads are closed, a third of those won; every lead has ratings, a
source and a history of three signals, as counts or as dates.
"""
import random
import sys
from datetime import date, timedelta

rows = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
slug = sys.argv[2] if len(sys.argv) > 2 else "imp"
rng = random.Random(7)
today = date.today()
stages = ["lead", "initial_contact", "needs_discovery", "proposal", "intent_confirmed"]
sources = ["website", "referral", "event", "partner", "cold_outreach"]
out = sys.stdout
out.write("external_id,name,company,email,phone,owner_email,stage,status,created_at,closed_at,"
          "budget,need,authority,timeline,source,signal:website_visit,signal:email,signal:meeting\n")
for i in range(rows):
    quality = (rng.random() + rng.random()) / 2
    created = today - timedelta(days=rng.randint(1, 540))
    closed = rng.random() < 0.12
    status, closed_at = "open", ""
    if closed:
        status = "won" if rng.random() < 0.2 + 0.6 * quality else "lost"
        closed_at = (created + timedelta(days=rng.randint(0, (today - created).days))).isoformat()
    rate = lambda: min(5, max(1, round(1 + 4 * quality + rng.uniform(-1.2, 1.2))))
    meetings = ";".join(sorted((created + timedelta(days=rng.randint(0, (today - created).days))).isoformat()
                               for _ in range(rng.randint(0, 3))))
    company = f"Company {i // 3} Ltd" if i % 7 else f"杭州测试科技有限公司{i}"
    owner = f"rep{rng.randint(1, 20)}@{slug}.example" if rng.random() < 0.8 else ""
    out.write(
        f"IMP-{i:07d},Person {i},\"{company}\",person{i}@import.example,+1 555 {i:07d},{owner},"
        f"{rng.choice(stages)},{status},{created.isoformat()},{closed_at},"
        f"{rate()},{rate()},{rate()},{rate()},{rng.choice(sources)},"
        f"{rng.randint(0, int(12 * quality) + 1)},{rng.randint(0, 6)},{meetings}\n"
    )
