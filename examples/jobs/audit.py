"""Stand-in for order-audit's image in local mode: audits the order event that matched the job's pattern.

The Dispatcher passes the matched EventBridge event as ``TASKRUNNER_EVENT`` (JSON). Try it against a
running ``taskrunner local``::

    python - <<'PY'
    import boto3, json
    boto3.client("events", endpoint_url="http://127.0.0.1:PORT", region_name="us-east-1").put_events(Entries=[{
        "Source": "com.example.orders", "DetailType": "OrderPlaced",
        "Detail": json.dumps({"order_id": "o-1", "total": 1500})}])
    PY

Exit codes: 0 audited, 2 no event, 3 the event is not an order.
"""

from __future__ import annotations

import json
import os
import sys


def main() -> int:
    raw = os.environ.get("TASKRUNNER_EVENT")
    if not raw:
        print("TASKRUNNER_EVENT is not set: this job runs on OrderPlaced events", file=sys.stderr)
        return 2
    event = json.loads(raw)
    detail = event.get("detail") or {}
    if "total" not in detail:
        print(f"event {event.get('id')} has no order total", file=sys.stderr)
        return 3
    flag = "REVIEW" if float(detail["total"]) >= 1000 else "ok"
    print(f"order {detail.get('order_id', '?')} total {detail['total']}: {flag} (event {event.get('id')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
