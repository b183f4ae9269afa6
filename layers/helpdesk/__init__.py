"""The helpdesk domain: tickets, routing, SLA clocks and escalation, free of any Lambda plumbing."""
