#!/usr/bin/env bash
# The seed story on loopback: the example chain's rules checked and
# explained, keys for every agency in it, a broker and the agencies'
# adapters; prints each step and exits 0 only if each step happened as
# expected. Everything lives in a scratch directory, removed at
# the end (KB_DEMO_KEEP=1 keeps it). Run through `make demo`.
set -euo pipefail

here=$(cd "$(dirname "$0")/../.." && pwd)
build=${KB_BUILD:-$here/build}
kb="$build/ketenbus"
py=/usr/bin/python3
work=$(mktemp -d /tmp/ketenbus-demo.XXXXXX)
broker_pid=""
failures=0

cleanup() {
    if [ -n "$broker_pid" ] && kill -0 "$broker_pid" 2>/dev/null; then
        kill -TERM "$broker_pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$broker_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$broker_pid" 2>/dev/null || true
    fi
    if [ "${KB_DEMO_KEEP:-0}" = 1 ]; then echo "scratch directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
ok()   { printf '   ok: %s\n' "$*"; }
bad()  { printf '   FAILED: %s\n' "$*"; failures=$((failures + 1)); }

# Show a receipt or message JSON line in a readable form.
show() {
    "$py" -c '
import json, sys
for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    m = json.loads(line)
    if "outcome" in m:
        extra = ""
        if m.get("recipients"): extra += " to " + ", ".join(m["recipients"])
        if m.get("reason"): extra += " (" + m["reason"] + ")"
        if m.get("rule_id") and m["rule_id"] not in m.get("reason", ""): extra += " [rule " + m["rule_id"] + "]"
        if "audit_index" in m: extra += " [audit #%d]" % m["audit_index"]
        print("   receipt: %s %s%s" % (m["message_id"], m["outcome"].upper(), extra))
    else:
        p = m.get("signal") or m.get("referral") or m.get("referral_update") or m.get("notice") or {}
        print("   %s received %s from %s: purpose %s, handling %s, basis \"%s\"" % (
            sys.argv[1], m.get("kind"), m.get("sender"), m.get("purpose"), m.get("handling"),
            (m.get("legal_basis") or {}).get("basis", "")))
        for k in ("exploitation", "minor", "age_band", "action", "urgency", "deadline_us", "status", "reason", "narrative"):
            if k in p: print("      %s: %s" % (k, p[k]))
        if "observed" in p: print("      observed: %s" % json.dumps(p["observed"]))
        if m.get("withheld"): print("      withheld: %s" % ", ".join(m["withheld"]))
' "${1:-}"
}

example="$here/ops/examples/chain.yaml"
sed 's|listen: tcp://127.0.0.1:5555|listen: tcp://127.0.0.1:*|' "$example" > "$work/chain.yaml"

step "1. Check the sharing rules of the example chain (ketenbus policy check)"
rc=0; out=$(cd "$work" && "$kb" policy check chain.yaml 2>&1) || rc=$?
echo "$out" | sed 's/^/   /'
[ "$rc" = 0 ] && echo "$out" | grep -q ': OK$' && ok "rules file is valid, no warnings" || bad "policy check failed (exit $rc)"

# The agency ids of the chain: the "- id:" entries of the agencies list.
agencies=$(awk '/^agencies:/ { a = 1; next } /^[^ #]/ { a = 0 } a && $1 == "-" && $2 == "id:" { print $3 }' "$example")

step "2. Keys for the broker and the $(echo $agencies | wc -w) agencies (CURVE + Ed25519)"
"$kb" keygen --broker --out "$work/keys" >/dev/null
for a in $agencies; do
    "$kb" keygen --agency "$a" --out "$work/keys" >/dev/null
done
echo "   agencies: $(echo $agencies | sed 's/ /, /g')"
ls "$work/keys" | sed 's/^/   /' | head -6; echo "   ... ($(ls "$work/keys" | wc -l) files)"
(cd "$work" && "$kb" policy check --keys chain.yaml >/dev/null) && ok "every key file of the chain loads" \
    || bad "policy check --keys failed"

step "3. Start the broker on loopback"
"$build/ketenbusd" --config "$work/chain.yaml" --ready-file "$work/ready" --log-level debug 2> "$work/broker.log" &
broker_pid=$!
for _ in $(seq 1 100); do [ -s "$work/ready" ] && break; sleep 0.1; done
[ -s "$work/ready" ] || { cat "$work/broker.log"; echo "broker did not start"; exit 1; }
endpoint=$(cat "$work/ready")
ok "ketenbusd pid $broker_pid serving $endpoint"

export KETENBUS_KEYS="$work/keys" KETENBUS_BROKER="$endpoint" KETENBUS_BROKER_CERT="$work/keys/broker.curve"
as() { KETENBUS_AGENCY=$1 KETENBUS_STATE="$work/state-$1" "${@:2}"; }

# The child's pseudonym: HMAC-SHA256 of her normalised name and birth date
# under the chain key the agencies share (docs/SUBJECT_KEYS.md); the broker
# only ever sees this key.
"$kb" keygen --chain-key --out "$work/chain.key" >/dev/null
subject=$(echo 'Lakatos|Ana|2011-03-14' | "$kb" subject-key --chain-key "$work/chain.key" --type name_birth -)

step "4. Fier hears a 13-year-old girl's story and signals police and CoMensha"
cat > "$work/fier-signal.json" <<JSON
{"purpose": "victim_care", "handling": "h2",
 "legal_basis": {"basis": "AVG art. 6(1)(d): vital interest of the data subject", "consent": "refused"},
 "subject_keys": ["$subject"], "officer": "fier-hulpverlener-12",
 "signal": {"exploitation": "criminal", "indicators": ["controlled_movement", "earnings_handed_over", "adult_claims_custody"],
            "minor": true, "age_band": "12_to_15", "observed": {"municipality": "GM0344", "location": "Chat met Fier"},
            "urgency": "priority", "several_perpetrators": true, "cross_border": true, "source": "self_report",
            "reliability": "b", "accuracy": "2",
            "narrative": "Girl (13) says her uncle drives her and two cousins to city centres to steal; money goes to him."}}
JSON
out=$(as fier "$kb" send "$work/fier-signal.json") || true
echo "$out" | show
echo "$out" | grep -q '"outcome":"accepted"' && echo "$out" | grep -q '"recipients":\["politie","comensha"\]' \
    && ok "accepted for politie and comensha" || bad "Fier's signal was not accepted for politie and comensha"

step "5. Police arrest the same child for pickpocketing and signal the board"
cat > "$work/police-signal.json" <<JSON
{"recipients": ["rvdk"], "purpose": "child_protection", "handling": "h1",
 "legal_basis": {"basis": "Wpg art. 19", "consent": "not_required"},
 "subject_keys": ["$subject"], "officer": "politie-utrecht-4471",
 "signal": {"exploitation": "criminal", "indicators": ["repeated_arrests", "adult_claims_custody", "no_id_documents"],
            "minor": true, "age_band": "12_to_15", "observed": {"municipality": "GM0344", "location": "Utrecht Centraal"},
            "urgency": "urgent", "source": "officer", "reliability": "a", "accuracy": "1",
            "narrative": "Arrested for pickpocketing; a man claiming to be her uncle came to collect her."}}
JSON
out=$(as politie "$kb" send "$work/police-signal.json") || true
echo "$out" | show
echo "$out" | grep -q '"outcome":"accepted"' && ok "accepted for rvdk" || bad "police signal not accepted"

step "6. Police signal the case to EMM for analysis: narrative and location withheld"
cat > "$work/police-emm.json" <<JSON
{"recipients": ["emm"], "purpose": "analysis", "handling": "h1",
 "legal_basis": {"basis": "Wpg art. 19", "consent": "not_required"},
 "subject_keys": ["$subject"], "officer": "politie-utrecht-4471",
 "signal": {"exploitation": "criminal", "indicators": ["repeated_arrests", "adult_claims_custody", "no_id_documents"],
            "minor": true, "age_band": "12_to_15", "observed": {"municipality": "GM0344", "location": "Utrecht Centraal"},
            "urgency": "urgent", "source": "officer", "reliability": "a", "accuracy": "1",
            "narrative": "Arrested for pickpocketing; a man claiming to be her uncle came to collect her."}}
JSON
out=$(as politie "$kb" send "$work/police-emm.json") || true
echo "$out" | show
echo "$out" | grep -q '"outcome":"accepted"' || bad "police signal to EMM not accepted"
out=$(as emm "$kb" recv --count 1 --timeout 10) || true
echo "$out" | show emm
echo "$out" | grep -q '"withheld":\["signal.narrative","signal.observed.location"\]' \
    && ! echo "$out" | grep -q 'Utrecht Centraal\|uncle' \
    && ok "EMM got the signal without narrative and location (rule analysis-emm)" \
    || bad "EMM's copy was not redacted as the rule says"

step "7. Police refer the child to the board: urgent, answer within 4 hours"
deadline=$(date -u -d '+4 hours' +%Y-%m-%dT%H:%M:%SZ)
cat > "$work/referral.json" <<JSON
{"recipients": ["rvdk"], "purpose": "child_protection", "handling": "h2",
 "legal_basis": {"basis": "Jeugdwet art. 7.4.0", "consent": "not_required"},
 "subject_keys": ["$subject"], "officer": "politie-utrecht-4471",
 "referral": {"action": "youth_care", "deadline_us": "$deadline", "urgency": "urgent",
              "reason": "Child in custody must not be handed back to the man claiming to be family.",
              "contact": "Team Mensenhandel Midden-Nederland, duty desk"}}
JSON
out=$(as politie "$kb" send "$work/referral.json") || true
echo "$out" | show
referral_id=$(echo "$out" | "$py" -c 'import json,sys; print(json.loads(sys.stdin.readline() or "{}").get("message_id", ""))')
echo "$out" | grep -q '"outcome":"accepted"' && ok "referral $referral_id accepted" || bad "referral not accepted"

step "8. The board's adapter comes online and receives both messages"
out=$(as rvdk "$kb" recv --count 2 --timeout 10) || true
echo "$out" | show rvdk
[ "$(echo "$out" | grep -c '"sender":"politie"')" = 2 ] && ok "rvdk received 2 messages from politie" \
    || bad "rvdk did not receive both messages"

step "9. The board accepts the referral"
cat > "$work/accept.json" <<JSON
{"recipients": ["politie"], "purpose": "child_protection", "handling": "h2",
 "legal_basis": {"basis": "Jeugdwet art. 7.4.0", "consent": "not_required"},
 "correlation_id": "$referral_id", "officer": "rvdk-piket-2",
 "referral_update": {"status": "accepted", "reason": "Crisis placement arranged; child stays out of the family's reach.",
                     "handled_by": "RvdK piket Midden-Nederland"}}
JSON
out=$(as rvdk "$kb" send "$work/accept.json") || true
echo "$out" | show
echo "$out" | grep -q '"outcome":"accepted"' && ok "answer accepted" || bad "answer not accepted"

step "10. Police receive Fier's signal and the board's answer"
out=$(as politie "$kb" recv --count 2 --timeout 10) || true
echo "$out" | show politie
echo "$out" | grep -q '"status":"accepted"' && echo "$out" | grep -q "\"correlation_id\":\"$referral_id\"" \
    && ok "referral answered: accepted" || bad "police did not get the board's answer"
echo "$out" | grep -q '"sender":"fier"' && ok "Fier's signal reached the police" || bad "Fier's signal missing"

step "11. The municipality asks the police for their narrative: refused by a deny rule"
cat > "$work/municipality.json" <<JSON
{"recipients": ["politie"], "purpose": "child_protection", "handling": "h0",
 "legal_basis": {"basis": "Jeugdwet art. 2.1", "consent": "not_required"},
 "subject_keys": ["$subject"], "officer": "gem-utrecht-wijkteam-3",
 "referral": {"action": "other", "reason": "Please send the police narrative of the arrest."}}
JSON
rc=0; out=$(as gem-utrecht "$kb" send "$work/municipality.json") || rc=$?
echo "$out" | show
[ "$rc" = 3 ] && echo "$out" | grep -q '"outcome":"rejected"' \
    && echo "$out" | grep -q '"rule_id":"no-municipal-requests-to-police"' \
    && ok "refused by deny rule no-municipal-requests-to-police, and audited" \
    || bad "the municipality's request was not refused by the deny rule (exit $rc)"

step "12. Why? Ask the rules (ketenbus policy explain)"
echo "   \$ ketenbus policy explain chain.yaml --from gem-utrecht --to politie --kind referral \\"
echo "         --purpose child_protection --handling h0"
rc=0; out=$(cd "$work" && "$kb" policy explain chain.yaml --from gem-utrecht --to politie --kind referral \
    --purpose child_protection --handling h0 2>&1) || rc=$?
echo "$out" | sed 's/^/   /'
[ "$rc" = 3 ] && echo "$out" | grep -q 'REFUSED by deny rule no-municipal-requests-to-police' \
    && ok "explain names the deny rule (exit 3: refused)" || bad "explain did not name the deny rule (exit $rc)"

step "13. A privacy officer asks what the chain exchanged about the child (GDPR art. 15)"
echo "   \$ ketenbus audit subject --data data --identify 'name_birth=Lakatos|Ana|2011-03-14' --chain-key chain.key"
rc=0; out=$(cd "$work" && "$kb" audit subject --data data --identify 'name_birth=Lakatos|Ana|2011-03-14' \
    --chain-key chain.key 2>&1) || rc=$?
echo "$out" | sed 's/^/   /'
[ "$rc" = 0 ] && echo "$out" | grep -q '5 messages about this person' && echo "$out" | grep -q 'REFUSED for politie' \
    && ok "every exchange about her, and the refusal, from the running broker's audit trail" \
    || bad "the subject access report is not complete (exit $rc)"

step "14. Stop the broker"
kill -TERM "$broker_pid"; wait "$broker_pid" && ok "clean shutdown" || bad "broker exit status $?"
broker_pid=""
{ grep -c 'event=accepted' "$work/broker.log" || true; } | sed 's/^/   accepted messages logged: /'
{ grep -c 'event=refused' "$work/broker.log" || true; } | sed 's/^/   refusals logged: /'

step "15. Verify the audit trail with the broker's public key, and write the HTML report"
rc=0; out=$(cd "$work" && "$kb" audit verify --offline --config chain.yaml 2>&1) || rc=$?
echo "$out" | sed 's/^/   /'
[ "$rc" = 0 ] && ok "audit trail verified" || bad "audit verify failed (exit $rc)"
report="$build/demo-audit-report.html"
rc=0; out=$(cd "$work" && "$kb" audit report --offline --config chain.yaml --out "$report" 2>&1) || rc=$?
[ "$rc" = 0 ] && ok "audit report: $report" || bad "audit report failed (exit $rc): $out"

echo
if [ "$failures" = 0 ]; then
    printf '\033[1mdemo: every step happened as expected\033[0m\n'
else
    printf '\033[1mdemo: %d step(s) failed\033[0m\n' "$failures"; exit 1
fi
