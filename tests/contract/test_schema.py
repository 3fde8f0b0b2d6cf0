import json

from ledger.contract import EVENT_TYPES, contract_json_schema


def test_schema_is_titled_and_deterministic():
    schema = contract_json_schema()
    assert isinstance(schema, dict)
    assert schema["title"] == "medledger event contract v1"
    assert json.dumps(schema) == json.dumps(contract_json_schema())
    json.dumps(schema, allow_nan=False)  # plain JSON: no enums objects, no NaN


def test_schema_names_every_event_type_as_a_const():
    schema = contract_json_schema()
    consts = {
        definition["properties"]["event_type"]["const"]
        for definition in schema["$defs"].values()
        if "event_type" in definition.get("properties", {})
    }
    assert consts == set(EVENT_TYPES)
    assert set(schema["discriminator"]["mapping"]) == set(EVENT_TYPES)
    assert len(schema["oneOf"]) == len(EVENT_TYPES)


def test_schema_forbids_unknown_fields_and_member_id_on_year_closed():
    defs = contract_json_schema()["$defs"]
    event_defs = [defs[cls.__name__] for cls in EVENT_TYPES.values()]
    assert all(d["additionalProperties"] is False for d in event_defs)
    assert "member_id" not in defs["YearClosed"]["properties"]
    assert "member_id" in defs["MemberEnrolled"]["required"]


def test_schema_describes_money_dates_and_conditional_requirements():
    defs = contract_json_schema()["$defs"]
    money = defs["VisitItem"]["properties"]["amount"]
    assert {alt["type"] for alt in money["anyOf"]} == {"string", "number"}
    assert defs["MemberEnrolled"]["properties"]["birth_date"]["format"] == "date"
    assert defs["MemberEnrolled"]["properties"]["occurred_at"]["format"] == "date-time"
    assert defs["Region"]["enum"] == ["640000", "371000", "320100", "150000"]
    assert defs["VisitSubmitted"]["properties"]["items"]["minItems"] == 1
    assert defs["VisitSubmitted"]["then"]["required"] == ["disease_code"]
    assert defs["PaymentRequested"]["then"]["required"] == ["beneficiary_id"]
