"""Each transaction (`infno`) the gateway answers, and the function that answers it."""

from __future__ import annotations

from . import reconciliation, registration, settlement

TRANSACTIONS = {
    "1101": registration.person,
    "2201": registration.register,
    "2203": registration.visit_information,
    "2204": registration.upload_fees,
    "2205": registration.cancel_fees,
    "2206": settlement.presettle,
    "2207": settlement.settle,
    "2208": settlement.reverse,
    "2401": registration.admit,
    "2402": registration.discharge,
    "2501": registration.file_out_of_area,
    "2502": registration.cancel_filing,
    "3201": reconciliation.reconcile,
    "3202": reconciliation.reconcile_details,
    "5203": settlement.query,
}
