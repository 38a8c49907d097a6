// `ledgerctl report`: the decision report, one self-contained HTML page.
//
// The page is drawn from decision evidence (decision_evidence.h) and embeds
// it whole in <script type="application/json" id="evidence">; the page's own
// script (kVerifierScript) checks the embedded records against the embedded
// signed checkpoint with WebCrypto and writes the outcome into the element
// with id "verification". Every string that comes from a record is escaped
// (Esc): members write rationales, and a rationale is not markup.
#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "ledger/common/files.h"
#include "ledger/crypto/sha256.h"
#include "ledger/event/envelope.h"
#include "tools/ledgerctl/commands.h"
#include "tools/ledgerctl/decision_evidence.h"

namespace ledger::ctl {
namespace {

// HTML-escapes text for element content and quoted attribute values.
std::string Esc(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

// JSON for a <script type="application/json"> element: <, > and & only
// occur inside JSON strings, where \u escapes mean the same characters, so
// the text can never close the element or open a comment.
std::string ScriptJson(const Json& json) {
  std::string text = json.dump(-1, ' ', false, nlohmann::detail::error_handler_t::replace);
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '<') out += "\\u003c";
    else if (c == '>') out += "\\u003e";
    else if (c == '&') out += "\\u0026";
    else out += c;
  }
  return out;
}

std::string S(const Json& j, const char* name) {
  if (!j.contains(name) || !j[name].is_string()) return "";
  return j[name].get<std::string>();
}
uint64_t U(const Json& j, const char* name) {
  if (!j.contains(name) || !j[name].is_number_unsigned()) return 0;
  return j[name].get<uint64_t>();
}
int64_t I(const Json& j, const char* name) {
  if (!j.contains(name) || !j[name].is_number_integer()) return 0;
  return j[name].get<int64_t>();
}

struct RecordInfo {
  std::string kind;
  std::string author;
  int64_t time_ns = 0;
  std::string leaf_hash;
};

class Page {
 public:
  Page(const Json& evidence, std::string scope) : ev_(evidence), scope_(std::move(scope)) {
    for (const Json& r : ev_["records"]) {
      RecordInfo info;
      info.leaf_hash = S(r, "leaf_hash");
      std::string bytes;
      if (crypto::Base64Decode(S(r, "record"), &bytes)) {
        auto record = DecodeRecord(bytes, U(r, "position"));
        if (record.ok()) {
          info.time_ns = record->ledger_time_unix_ns();
          auto envelope = DecodeStoredEvent(*record);
          if (envelope.ok()) {
            info.kind = EventKind(envelope->body);
            info.author = envelope->body.author();
          }
        }
      }
      records_.emplace(U(r, "position"), std::move(info));
    }
  }

  std::string Render() {
    std::string h;
    absl::StrAppend(&h, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n",
                    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
                    "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
                    "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n",
                    "<title>Decision report: ", Esc(scope_), "</title>\n<style>", kStyle, "</style></head>\n<body>\n");
    absl::StrAppend(&h, "<header><h1>Decision report</h1>\n<p class=\"scope\">", Esc(scope_), " &middot; ledger <code>",
                    Esc(S(ev_, "origin")), "</code> &middot; checkpoint ", U(ev_["checkpoint"], "tree_size"), "</p>\n");
    absl::StrAppend(&h, "<div id=\"verification\" class=\"badge pending\">NOT verified: the page's check has not run "
                        "(it needs JavaScript)</div>\n");
    absl::StrAppend(&h, "<p class=\"trust\">This page checks itself against the operator key <code id=\"operator-key-id\">",
                    Esc(S(ev_["operator"], "key_id")),
                    "</code>, which it carries. Compare that key id with the operator's published key: a page "
                    "checked against a key you have not compared proves only that it agrees with itself. In this "
                    "browser it checks every embedded record (hash, inclusion proof, signature by a key of its "
                    "author), the checkpoint's signature, and that each vote, veto and call shown says what its "
                    "record says. The rest of the text (statuses, tallies, tapers, refusals) was drawn from the "
                    "records by ledgerctl: <code>ledgerctl verify-evidence</code> checks those facts, the witness "
                    "cosignatures and the same evidence offline.</p>\n</header>\n");

    // Summary.
    if (ev_["proposals"].size() > 1) absl::StrAppend(&h, "<nav><h2>Proposals</h2><ul>");
    for (const Json& p : ev_["proposals"]) {
      if (ev_["proposals"].size() == 1) break;  // the one proposal follows at once
      absl::StrAppend(&h, "<li><a href=\"#p-", Esc(S(p, "proposal_id")), "\">", Esc(S(p, "title")), "</a> <span class=\"st ",
                      StatusClass(S(p, "status")), "\">", Esc(Words(S(p, "status"), "PROPOSAL_")), "</span></li>");
    }
    if (ev_["proposals"].size() > 1) absl::StrAppend(&h, "</ul></nav>\n");
    absl::StrAppend(&h, "<main>\n");
    for (const Json& p : ev_["proposals"]) RenderProposal(p, &h);
    RenderRecords(&h);
    absl::StrAppend(&h, "</main>\n<script type=\"application/json\" id=\"evidence\">", ScriptJson(ev_), "</script>\n");
    absl::StrAppend(&h, "<script>", kVerifierScript, "</script>\n</body></html>\n");
    return h;
  }

 private:
  std::string At(uint64_t position) const {
    return absl::StrCat("<a class=\"rec\" href=\"#r-", position, "\">#", position, "</a>");
  }
  std::string When(uint64_t position) const {
    auto it = records_.find(position);
    if (it == records_.end() || it->second.time_ns == 0) return "";
    return Esc(FormatLedgerTime(it->second.time_ns));
  }
  // "GATEWAY_PASSED" -> "passed".
  static std::string Words(std::string s, const std::string& prefix) {
    if (s.rfind(prefix, 0) == 0) s = s.substr(prefix.size());
    for (char& c : s) c = c == '_' ? ' ' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  }
  static std::string StatusClass(const std::string& status) {
    if (absl::StrContains(status, "PASSED") || absl::StrContains(status, "ADOPTED")) return "good";
    if (absl::StrContains(status, "FAILED") || absl::StrContains(status, "REJECTED")) return "badst";
    if (absl::StrContains(status, "OPEN") || absl::StrContains(status, "LAPSED")) return "open";
    return "muted";
  }

  std::vector<const Json*> Facts(const std::string& proposal, const std::string& kind) const {
    std::vector<const Json*> out;
    for (const Json& f : ev_["facts"]) {
      if (S(f, "proposal_id") == proposal && S(f, "kind") == kind) out.push_back(&f);
    }
    std::sort(out.begin(), out.end(), [](const Json* a, const Json* b) { return U(*a, "position") < U(*b, "position"); });
    return out;
  }

  void RenderProposal(const Json& p, std::string* h) const {
    const std::string id = S(p, "proposal_id");
    absl::StrAppend(h, "<section class=\"proposal\" id=\"p-", Esc(id), "\">\n<h2>", Esc(S(p, "title")), "</h2>\n");
    absl::StrAppend(h, "<p class=\"meta\"><code>", Esc(id), "</code> in <code>", Esc(S(p, "collective_id")),
                    "</code> &middot; ", Esc(S(p, "category")), " &middot; proposed by <b>", Esc(S(p, "proposer")),
                    "</b> at ", At(U(p, "submitted_at")), " ", When(U(p, "submitted_at")), " &middot; <span class=\"st ",
                    StatusClass(S(p, "status")), "\">", Esc(Words(S(p, "status"), "PROPOSAL_")), "</span>");
    if (U(p, "ended_at") != 0) absl::StrAppend(h, " at ", At(U(p, "ended_at")));
    absl::StrAppend(h, p.value("intact", true) ? " &middot; no locked gateway was changed"
                                               : " &middot; <b class=\"bad\">a locked gateway was changed after it locked</b>",
                    "</p>\n");

    // Gateways as stages.
    absl::StrAppend(h, "<ol class=\"stages\">");
    for (const Json& g : p["gateways"]) {
      absl::StrAppend(h, "<li class=\"stage ", StatusClass(S(g, "status")), g.value("superseded", false) ? " superseded" : "",
                      "\"><span class=\"gw\">", Esc(S(g, "gateway_id")), "</span><span class=\"gs\">",
                      Esc(Words(S(g, "status"), "GATEWAY_")), g.value("superseded", false) ? " (superseded)" : "",
                      U(g, "called_at") != 0 ? " by call" : "", "</span></li>");
    }
    absl::StrAppend(h, "</ol>\n");

    auto votes = Facts(id, "vote");
    auto vetoes = Facts(id, "veto");
    auto calls = Facts(id, "call");
    auto overrules = Facts(id, "overruled");
    auto refusals = Facts(id, "refusal");

    // The timeline: the moments that decided the proposal, in ledger order.
    {
      std::vector<std::pair<uint64_t, std::string>> moments;
      moments.emplace_back(U(p, "submitted_at"), absl::StrCat("submitted by <b class=\"org\">", Esc(S(p, "proposer")), "</b>"));
      for (const Json* f : Facts(id, "gateway_passed")) {
        moments.emplace_back(U(*f, "position"), absl::StrCat("gateway <b>", Esc(S(*f, "gateway_id")), "</b> passed (locked)"));
      }
      for (const Json* v : vetoes) {
        moments.emplace_back(U(*v, "position"), absl::StrCat("<span class=\"tag veto-tag\">veto</span> by <b class=\"org\">",
                                                             Esc(S(*v, "org_id")), "</b> at ", Esc(S(*v, "gateway_id")), " &mdash; ",
                                                             Esc(Words(S(*v, "outcome"), "VETO_"))));
      }
      for (const Json* c : calls) {
        std::vector<std::string> who;
        for (const Json* o : overrules) {
          if (U(*o, "call_position") == U(*c, "position")) who.push_back(absl::StrCat("<b class=\"org\">", Esc(S(*o, "org_id")), "</b>"));
        }
        moments.emplace_back(U(*c, "position"),
                             absl::StrCat("<span class=\"tag call-tag\">call</span> by <b class=\"org\">", Esc(S(*c, "org_id")),
                                          "</b> at ", Esc(S(*c, "gateway_id")), ": ", Esc(S(*c, "outcome")),
                                          who.empty() ? "" : absl::StrCat(", overruling ", absl::StrJoin(who, ", "))));
      }
      for (const Json* r : refusals) {
        const bool reversal = r->value("attempted_reversal", false);
        moments.emplace_back(U(*r, "position"),
                             absl::StrCat(reversal ? "<span class=\"tag reversal-tag\">attempted reversal</span> "
                                                   : "<span class=\"tag\">refused</span> ",
                                          Esc(S(*r, "attempted_kind")), " by <b class=\"org\">", Esc(S(*r, "org_id")), "</b>",
                                          S(*r, "gateway_id").empty() ? "" : absl::StrCat(" on ", Esc(S(*r, "gateway_id"))),
                                          ": ", Esc(S(*r, "reason"))));
      }
      for (const char* end : {"adopted", "rejected", "withdrawn"}) {
        for (const Json* f : Facts(id, end)) {
          moments.emplace_back(U(*f, "position"), absl::StrCat("<b>", end, "</b>",
                                                               (*f).contains("tapers") && !(*f)["tapers"].empty()
                                                                   ? absl::StrCat(", with ", (*f)["tapers"].size(), " taper(s)")
                                                                   : std::string()));
        }
      }
      std::stable_sort(moments.begin(), moments.end(),
                       [](const auto& a, const auto& b) { return a.first < b.first; });
      absl::StrAppend(h, "<ol class=\"timeline\">");
      for (const auto& [at, text] : moments) {
        absl::StrAppend(h, "<li>", At(at), " <span class=\"when\">", When(at), "</span> ", text, "</li>");
      }
      absl::StrAppend(h, "</ol>\n");
    }
    for (const Json& g : p["gateways"]) {
      const std::string gid = S(g, "gateway_id");
      const uint64_t opened = U(g, "opened_at");
      absl::StrAppend(h, "<section class=\"gateway\"><h3>", Esc(gid), " <span class=\"st ", StatusClass(S(g, "status")),
                      "\">", Esc(Words(S(g, "status"), "GATEWAY_")), "</span></h3>\n");
      if (opened == 0) {  // position 0 is Genesis: this attempt never opened
        absl::StrAppend(h, "<p class=\"meta\">not opened</p></section>\n");
        continue;
      }
      absl::StrAppend(h, "<p class=\"meta\">opened at ", At(opened), " ", When(opened));
      if (U(g, "decided_at") != 0) {
        absl::StrAppend(h, " &middot; decided at ", At(U(g, "decided_at")), " ", When(U(g, "decided_at")), " &middot; tally: ",
                        U(g, "assent"), " assent, ", U(g, "object"), " object, ", U(g, "abstain"), " abstain of ",
                        U(g, "electorate"));
      } else {
        std::map<std::string, std::string> latest;  // each member's latest position so far
        for (const Json* v : votes) {
          if (S(*v, "gateway_id") == gid && U(*v, "position") >= opened) latest[S(*v, "org_id")] = S(*v, "vote");
        }
        int assent = 0, object = 0, abstain = 0;
        for (const auto& [org, vote] : latest) {
          assent += vote == "ASSENT";
          object += vote == "OBJECT";
          abstain += vote == "ABSTAIN";
        }
        absl::StrAppend(h, " &middot; so far: ", assent, " assent, ", object, " object, ", abstain,
                        " abstain (each member's latest position)");
      }
      absl::StrAppend(h, "</p>\n");
      // Votes on this attempt: between its opening and the next attempt's.
      std::string rows;
      for (const Json* v : votes) {
        if (S(*v, "gateway_id") != gid || U(*v, "position") < opened) continue;
        if (g.value("superseded", false) && NextOpening(p, g) != 0 && U(*v, "position") >= NextOpening(p, g)) continue;
        const std::string vote = S(*v, "vote");
        absl::StrAppend(&rows, "<tr class=\"", vote == "OBJECT" ? "object" : "", "\"><td>", Esc(S(*v, "org_id")),
                        "</td><td class=\"pos\">", Esc(Words(vote, "")), "</td><td>", When(U(*v, "position")),
                        "</td><td class=\"why\">", Esc(S(*v, "rationale")), "</td><td>", At(U(*v, "position")), "</td></tr>");
      }
      if (!rows.empty()) {
        absl::StrAppend(h, "<details", gid == "final-decision" || absl::StrContains(rows, "class=\"object\"") ? " open" : "",
                        "><summary>who voted what, and when</summary><table class=\"votes\"><thead><tr><th>member</th>"
                        "<th>position</th><th>ledger time</th><th>rationale</th><th>record</th></tr></thead><tbody>",
                        rows, "</tbody></table></details>\n");
      }
      for (const Json* v : vetoes) {
        if (S(*v, "gateway_id") != gid || U(*v, "position") < opened) continue;
        if (g.value("superseded", false) && NextOpening(p, g) != 0 && U(*v, "position") >= NextOpening(p, g)) continue;
        absl::StrAppend(h, "<div class=\"veto\"><b>Veto</b> by <b class=\"org\">", Esc(S(*v, "org_id")), "</b> at ",
                        At(U(*v, "position")), " ", When(U(*v, "position")), ": <q class=\"why\">", Esc(S(*v, "rationale")),
                        "</q> &mdash; ", Esc(Words(S(*v, "outcome"), "VETO_")));
        if (U(*v, "ended_at") != 0) absl::StrAppend(h, " at ", At(U(*v, "ended_at")));
        absl::StrAppend(h, "</div>\n");
      }
      for (const Json* c : calls) {
        if (S(*c, "gateway_id") != gid || U(*c, "position") < opened) continue;
        std::vector<std::string> who;
        for (const Json* o : overrules) {
          if (S(*o, "gateway_id") == gid && U(*o, "call_position") == U(*c, "position")) {
            who.push_back(absl::StrCat("<b class=\"org\">", Esc(S(*o, "org_id")), "</b> (", At(U(*o, "position")), ")"));
          }
        }
        absl::StrAppend(h, "<div class=\"call\"><b>Called</b> by <b class=\"caller\">", Esc(S(*c, "org_id")), "</b> at ",
                        At(U(*c, "position")), " ", When(U(*c, "position")), ": ", Esc(S(*c, "outcome")),
                        " &mdash; <q class=\"why\">", Esc(S(*c, "rationale")), "</q>");
        if (!who.empty()) absl::StrAppend(h, "<br>Overruled: ", absl::StrJoin(who, ", "), " by ", Esc(S(*c, "org_id")));
        absl::StrAppend(h, "</div>\n");
      }
      absl::StrAppend(h, "</section>\n");
    }

    if (!refusals.empty()) {
      absl::StrAppend(h, "<section class=\"refusals\"><h3>Refused attempts</h3><ul>");
      for (const Json* r : refusals) {
        const bool reversal = r->value("attempted_reversal", false);
        absl::StrAppend(h, "<li class=\"refusal", reversal ? " reversal" : "", "\">",
                        reversal ? "<b>Attempted reversal</b> of the locked gateway " : "Refused ",
                        reversal ? Esc(S(*r, "gateway_id")) : Esc(S(*r, "attempted_kind")), ": <b class=\"org\">",
                        Esc(S(*r, "org_id")), "</b> (", Esc(S(*r, "attempted_kind")), ") at ", At(U(*r, "position")), " ",
                        When(U(*r, "position")), " &mdash; ", Esc(S(*r, "reason")), ": ", Esc(S(*r, "message")),
                        " <span class=\"muted\">refused and kept on the record</span></li>");
      }
      absl::StrAppend(h, "</ul></section>\n");
    }

    auto impacts = Facts(id, "impact");
    if (!impacts.empty() || !p["tapers"].empty()) {
      absl::StrAppend(h, "<section class=\"tapers\"><h3>Impacts and tapers</h3>");
      for (const Json* i : impacts) {
        absl::StrAppend(h, "<p><b class=\"org\">", Esc(S(*i, "org_id")), "</b> declared ",
                        Money(I(*i, "annual_impact_pence")), " a year at ", At(U(*i, "position")), ": <q>",
                        Esc(S(*i, "description")), "</q></p>");
      }
      for (const Json& t : p["tapers"]) absl::StrAppend(h, TaperChart(t, U(p, "ended_at")));
      absl::StrAppend(h, "</section>\n");
    }
    absl::StrAppend(h, "</section>\n");
  }

  // Where the next attempt at `g`'s gateway opened (0: none).
  static uint64_t NextOpening(const Json& p, const Json& g) {
    bool seen = false;
    for (const Json& other : p["gateways"]) {
      if (&other == &g) {
        seen = true;
        continue;
      }
      if (seen && S(other, "gateway_id") == S(g, "gateway_id")) return U(other, "opened_at");
    }
    return 0;
  }

  static std::string Money(int64_t pence) {
    return absl::StrCat("&pound;", absl::StrFormat("%d", pence / 100));
  }

  // A small bar chart: support by year as a share of the annual impact.
  std::string TaperChart(const Json& t, uint64_t adopted_at) const {
    const int64_t impact = t.value("annual_impact_pence", int64_t{0});
    std::vector<int64_t> years;
    if (t.contains("support_by_year_pence") && t["support_by_year_pence"].is_array()) {
      for (const Json& year : t["support_by_year_pence"]) years.push_back(year.is_number_integer() ? year.get<int64_t>() : 0);
    }
    const int w = 56, top = 18, hmax = 70;
    std::string svg = absl::StrCat("<figure class=\"taper\"><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"",
                                   w * static_cast<int>(years.size()) + 10, "\" height=\"", top + hmax + 20,
                                   "\" role=\"img\" aria-label=\"taper for ", Esc(S(t, "org_id")), "\">");
    for (size_t i = 0; i < years.size(); ++i) {
      const double share = impact > 0 ? static_cast<double>(years[i]) / static_cast<double>(impact) : 0;
      const int bh = static_cast<int>(share * hmax + 0.5);
      const int x = 5 + static_cast<int>(i) * w;
      absl::StrAppend(&svg, "<rect x=\"", x + 6, "\" y=\"", top + hmax - bh, "\" width=\"", w - 12, "\" height=\"", bh,
                      "\" class=\"bar\"/><text x=\"", x + w / 2, "\" y=\"", top + hmax - bh - 4,
                      "\" text-anchor=\"middle\">", static_cast<int>(share * 100 + 0.5), "%</text><text x=\"", x + w / 2,
                      "\" y=\"", top + hmax + 14, "\" text-anchor=\"middle\">year ", i + 1, "</text>");
    }
    std::vector<std::string> amounts;
    for (int64_t y : years) amounts.push_back(Money(y));
    absl::StrAppend(&svg, "</svg><figcaption>Taper for <b class=\"org\">", Esc(S(t, "org_id")), "</b>: ", Money(impact),
                    " a year; support ", absl::StrJoin(amounts, ", "), " (adopted at ", At(adopted_at),
                    ")</figcaption></figure>");
    return svg;
  }

  void RenderRecords(std::string* h) const {
    absl::StrAppend(h, "<section id=\"records\"><h2>The records this report rests on</h2>\n<p class=\"meta\">Each record "
                       "is embedded below the page (base64 of its stored bytes) with its inclusion proof against "
                       "checkpoint ", U(ev_["checkpoint"], "tree_size"), "; the last column is this page's own check.</p>\n"
                       "<table class=\"records\"><thead><tr><th>record</th><th>kind</th><th>author</th><th>ledger time"
                       "</th><th>leaf hash</th><th>check</th></tr></thead><tbody>\n");
    for (const auto& [position, info] : records_) {
      absl::StrAppend(h, "<tr id=\"r-", position, "\"><td>#", position, "</td><td>", Esc(info.kind), "</td><td>",
                      Esc(info.author), "</td><td>", Esc(info.time_ns != 0 ? FormatLedgerTime(info.time_ns) : ""),
                      "</td><td><code>", Esc(info.leaf_hash.substr(0, 16)), "&hellip;</code></td><td id=\"v-", position,
                      "\" class=\"chk\">not checked</td></tr>\n");
    }
    absl::StrAppend(h, "</tbody></table></section>\n");
  }

  static constexpr char kStyle[] = R"css(
:root{--ok:#1b7f3b;--bad:#b3261e;--open:#8a6d00;--muted:#666;--line:#ddd}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1100px;padding:1rem 1.5rem;color:#1a1a1a}
h1{margin:.2rem 0}h2{margin:1.6rem 0 .4rem;border-bottom:2px solid #222}h3{margin:1rem 0 .3rem;font-size:1.05rem}
code{font:12px ui-monospace,Menlo,Consolas,monospace;background:#f4f4f4;padding:0 .2em}
.scope,.meta,.muted{color:var(--muted)}.meta{font-size:13px;margin:.2rem 0}
.badge{font-weight:600;padding:.6rem .9rem;border-radius:6px;margin:.6rem 0;border:2px solid}
.badge.ok{color:var(--ok);border-color:var(--ok);background:#eef8f0}.badge.bad{color:var(--bad);border-color:var(--bad);background:#fdf0ef}
.badge.pending{color:var(--open);border-color:var(--open)}
.trust{font-size:13px;color:#333;max-width:60rem}
nav ul{padding-left:1.2rem;margin:.3rem 0}
.st{font-size:12px;font-weight:600;text-transform:uppercase;letter-spacing:.03em}
.good{color:var(--ok)}.badst,.bad{color:var(--bad)}.open{color:var(--open)}
.stages{display:flex;flex-wrap:wrap;gap:4px;list-style:none;padding:0;margin:.6rem 0}
.stage{flex:1 1 8rem;border:1px solid var(--line);border-top:5px solid #bbb;padding:.3rem .5rem;background:#fafafa}
.stage.good{border-top-color:var(--ok)}.stage.open{border-top-color:var(--open)}.stage.badst{border-top-color:var(--bad)}
.stage .gw{display:block;font-weight:600;color:#222}.stage .gs{font-size:12px}.stage.superseded{opacity:.6}
.proposal{border-top:1px solid var(--line);margin-top:1.2rem}
.gateway{margin-left:.4rem;padding-left:.8rem;border-left:3px solid var(--line)}
table{border-collapse:collapse;width:100%;font-size:13px;margin:.3rem 0}
th,td{text-align:left;padding:.15rem .4rem;border-bottom:1px solid var(--line);vertical-align:top}
tr.object td.pos{color:var(--bad);font-weight:600}
.why{white-space:pre-wrap;word-break:break-word}
.veto{border-left:4px solid var(--bad);background:#fdf3f2;padding:.3rem .6rem;margin:.3rem 0}
.call{border-left:4px solid #5b3fa8;background:#f4f1fb;padding:.3rem .6rem;margin:.3rem 0}
.refusal{margin:.2rem 0}.refusal.reversal{background:#fff3cd;border-left:4px solid #c77700;padding:.2rem .5rem;list-style:none}
.taper{display:inline-block;margin:.3rem 1.2rem .3rem 0;vertical-align:top}.taper svg text{font-size:11px;fill:#333}
.taper .bar{fill:#3b6ea8}figcaption{font-size:12px;max-width:18rem}
.timeline{list-style:none;padding:0;margin:.4rem 0 .8rem;font-size:14px}.timeline li{padding:.1rem 0}
.timeline .when{color:var(--muted);font-size:12px}
.tag{font-size:11px;font-weight:700;text-transform:uppercase;padding:0 .35em;border-radius:3px;background:#eee;color:#333}
.veto-tag{background:var(--bad);color:#fff}.call-tag{background:#5b3fa8;color:#fff}.reversal-tag{background:#c77700;color:#fff}
a.rec{font:12px ui-monospace,Menlo,Consolas,monospace;color:#2356a8;text-decoration:none}
td.chk.ok{color:var(--ok)}td.chk.bad{color:var(--bad);font-weight:600}
tr:target{background:#fff8c4}
@media print{
 body{max-width:none;padding:0;font-size:10pt}nav,.noprint{display:none}
 details{display:block}details>summary{display:none}details:not([open])>table{display:table}
 a.rec{color:#000}.badge{background:none!important}
 .proposal{break-before:page}.proposal:first-of-type{break-before:auto}
 .gateway,.veto,.call,.refusal,tr,figure{break-inside:avoid}
 #records{break-before:page}
}
)css";

  static constexpr char kVerifierScript[] = R"js(
(function () {
  'use strict';
  var badge = document.getElementById('verification');
  function show(ok, text) { badge.textContent = text; badge.className = ok ? 'badge ok' : 'badge bad'; }
  function b64(s) {
    if (typeof s !== 'string' || !/^[A-Za-z0-9+\/]*={0,2}$/.test(s)) throw new Error('not base64');
    var bin = atob(s), u = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) u[i] = bin.charCodeAt(i);
    return u;
  }
  function hex(u) { return Array.from(u, function (b) { return b.toString(16).padStart(2, '0'); }).join(''); }
  function unhex(h) {
    if (typeof h !== 'string' || !/^([0-9a-f]{2}){32}$/.test(h)) throw new Error('a proof hash is not 32 bytes of hex');
    var u = new Uint8Array(32);
    for (var i = 0; i < 32; i++) u[i] = parseInt(h.substr(2 * i, 2), 16);
    return u;
  }
  function cat() {
    var n = 0, i, o = 0;
    for (i = 0; i < arguments.length; i++) n += arguments[i].length;
    var u = new Uint8Array(n);
    for (i = 0; i < arguments.length; i++) { u.set(arguments[i], o); o += arguments[i].length; }
    return u;
  }
  function eq(a, b) {
    if (a.length !== b.length) return false;
    for (var i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }
  async function sha256(u) { return new Uint8Array(await crypto.subtle.digest('SHA-256', u)); }
  var enc = new TextEncoder(), dec = new TextDecoder();
  // The protobuf wire format, enough to read Record and SignedEvent.
  function fields(u) {
    var out = [], i = 0;
    function varint() {
      var x = 0n, s = 0n;
      for (;;) {
        if (i >= u.length) throw new Error('truncated varint');
        var b = u[i++];
        x |= BigInt(b & 0x7f) << s; s += 7n;
        if (!(b & 0x80)) return x;
        if (s > 63n) throw new Error('varint too long');
      }
    }
    while (i < u.length) {
      var key = Number(varint()), f = key >>> 3, t = key & 7;
      if (t === 0) out.push({ f: f, v: varint() });
      else if (t === 2) {
        var n = Number(varint());
        if (i + n > u.length) throw new Error('truncated field ' + f);
        out.push({ f: f, b: u.subarray(i, i + n) }); i += n;
      } else if (t === 1) i += 8; else if (t === 5) i += 4;
      else throw new Error('wire type ' + t);
    }
    return out;
  }
  // Protobuf keeps the last occurrence of a singular field: so does this.
  function field(fs, n) { for (var k = fs.length - 1; k >= 0; k--) if (fs[k].f === n) return fs[k]; return null; }
  // RFC 9162 2.1.3.2.
  async function included(leaf, index, size, proof, root) {
    if (index >= size) return false;
    var fn = BigInt(index), sn = BigInt(size) - 1n, r = leaf;
    for (var k = 0; k < proof.length; k++) {
      if (sn === 0n) return false;
      if ((fn & 1n) === 1n || fn === sn) {
        r = await sha256(cat(Uint8Array.of(1), proof[k], r));
        while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
      } else {
        r = await sha256(cat(Uint8Array.of(1), r, proof[k]));
      }
      fn >>= 1n; sn >>= 1n;
    }
    return sn === 0n && eq(r, root);
  }
  async function ed25519Key(raw) {
    try {
      return await crypto.subtle.importKey('raw', raw, { name: 'Ed25519' }, false, ['verify']);
    } catch (e) {
      return null;
    }
  }
  function mark(position, ok, text) {
    var cell = document.getElementById('v-' + position);
    if (cell) { cell.textContent = text; cell.className = 'chk ' + (ok ? 'ok' : 'bad'); }
  }
  async function run() {
    var ev = JSON.parse(document.getElementById('evidence').textContent);
    var fail = [], caveats = [];
    var opRaw = b64(ev.operator.public_key);
    if (opRaw.length !== 32) throw new Error('the operator key is not 32 bytes');
    var opId = hex((await sha256(opRaw)).subarray(0, 16));
    document.getElementById('operator-key-id').textContent = opId;
    // Whether this browser has Ed25519 at all (a fixed valid key: the
    // RFC 8032 test 1 public key), apart from whether the operator key imports.
    var edAvailable = (await ed25519Key(unhex('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a'))) !== null;
    var opKey = edAvailable ? await ed25519Key(opRaw) : null;
    if (edAvailable && !opKey) fail.push('the operator key ' + opId + ' is not a usable Ed25519 key');
    // The checkpoint: a C2SP signed note.
    var note = ev.checkpoint.note, split = note.indexOf('\n\n');
    if (split < 0) throw new Error('the checkpoint note has no blank line');
    var text = note.slice(0, split + 1), lines = text.split('\n');
    var origin = lines[0], sizeText = lines[1];
    if (lines.length !== 4 || !/^(0|[1-9][0-9]*)$/.test(sizeText)) throw new Error('the checkpoint note is malformed');
    var size = Number(sizeText), root = b64(lines[2]);
    if (root.length !== 32) throw new Error('the checkpoint root is not 32 bytes');
    if (origin !== ev.origin) fail.push('checkpoint: origin "' + origin + '" is not the evidence origin "' + ev.origin + '"');
    var keyHash = (await sha256(cat(enc.encode(origin + '\n'), Uint8Array.of(1), opRaw))).subarray(0, 4);
    var sigs = [], cosignatures = 0;
    note.slice(split + 2).split('\n').forEach(function (l) {
      var m = /^\u2014 (\S+) (\S+)$/.exec(l);
      if (!m) return;
      if (m[1] !== origin) { cosignatures++; return; }
      try { var blob = b64(m[2]); if (blob.length === 68 && eq(blob.subarray(0, 4), keyHash)) sigs.push(blob.subarray(4)); } catch (e) {}
    });
    if (!sigs.length) fail.push('checkpoint ' + size + ': no signature line by operator key ' + opId);
    else if (!edAvailable) caveats.push('this browser has no WebCrypto Ed25519, so no signature was checked here');
    else if (opKey) {
      // Every line that claims the operator key must verify (as ledgerctl checks).
      for (var s = 0; s < sigs.length; s++) {
        if (!(await crypto.subtle.verify({ name: 'Ed25519' }, opKey, sigs[s], enc.encode(text)))) {
          fail.push('checkpoint ' + size + ': the operator signature does not verify'); break;
        }
      }
    }
    // Keys the records register (ledgerctl verify-evidence also checks who registered them).
    var keys = {};
    (ev.keys || []).forEach(function (k) { keys[k.key_id] = k; });
    // Records: position, leaf hash, inclusion proof, signature.
    var verified = {}, bodies = {}, domain = enc.encode('decision-ledger/v1 signed event\n');
    for (var i = 0; i < ev.records.length; i++) {
      var r = ev.records[i], why = null;
      try {
        var bytes = b64(r.record), rec = fields(bytes), pf = field(rec, 1);
        var pos = pf ? Number(pf.v) : 0;
        var leaf = await sha256(cat(Uint8Array.of(0), bytes));
        if (pos !== r.position) why = 'its bytes say position ' + pos;
        else if (!(await included(leaf, r.position, size, r.inclusion_proof.map(unhex), root)))
          why = 'its leaf hash ' + hex(leaf) + ' does not lead to the checkpoint root (inclusion proof failed)';
        else {
          var se = fields(field(rec, 3).b), body = field(se, 1).b, kid = dec.decode(field(se, 2).b), sg = field(se, 3).b;
          bodies[r.position] = body;
          var k = keys[kid];
          var af = field(fields(body), 2), author = af ? dec.decode(af.b) : '';
          if (!k) why = 'its signing key ' + kid + ' is not in the evidence';
          else if (k.org_id !== author) why = 'signed by key ' + kid + ' of ' + k.org_id + ', not of its author ' + author;
          else if (hex((await sha256(b64(k.public_key))).subarray(0, 16)) !== kid) why = 'key ' + kid + ' does not match its id';
          else if (edAvailable) {
            var pk = await ed25519Key(b64(k.public_key));
            if (!pk || !(await crypto.subtle.verify({ name: 'Ed25519' }, pk, sg, cat(domain, body)))) why = 'its signature by key ' + kid + ' does not verify';
          }
        }
      } catch (e) {
        why = 'its bytes do not decode (' + e.message + ')';
      }
      if (why) { fail.push('record ' + r.position + ': ' + why); mark(r.position, false, 'FAILED: ' + why); }
      else { verified[r.position] = true; mark(r.position, true, edAvailable ? 'hash, proof, signature ok' : 'hash, proof ok'); }
    }
    // Every key was registered by a verified record that carries it.
    (ev.keys || []).forEach(function (k) {
      var b = bodies[k.registered_at], raw = b64(k.public_key), found = false;
      if (b) for (var j = 0; j + raw.length <= b.length && !found; j++) found = eq(b.subarray(j, j + raw.length), raw);
      if (!found) fail.push('key ' + k.key_id + ' of ' + k.org_id + ': record ' + k.registered_at + ' does not register it');
    });
    // Every fact on the page rests on a verified record; a vote, veto or call
    // says what its record says (author, proposal, gateway, position or
    // outcome, rationale), decoded here from the signed bytes.
    var missing = {};
    var POSITIONS = { ASSENT: 1n, OBJECT: 2n, ABSTAIN: 3n }, OUTCOMES = { PASS: 1n, FAIL: 2n };
    function str(fs, n) { var x = field(fs, n); return x && x.b ? dec.decode(x.b) : ''; }
    function num(fs, n) { var x = field(fs, n); return x && x.v !== undefined ? x.v : 0n; }
    ev.facts.forEach(function (f) {
      if (!verified[f.position]) { missing[f.position] = true; return; }
      var payload = null, want = null, body = fields(bodies[f.position]);
      if (f.kind === 'vote' || f.kind === 'veto') { payload = field(body, 24); want = f.kind === 'veto' ? 2n : POSITIONS[f.vote]; }
      else if (f.kind === 'call') { payload = field(body, 26); want = OUTCOMES[f.outcome]; }
      else return;
      var p = payload && payload.b ? fields(payload.b) : null;
      if (!p || str(body, 2) !== f.org_id || str(p, 1) !== f.proposal_id || str(p, 2) !== f.gateway_id ||
          num(p, 3) !== want || str(p, 4) !== (f.rationale || ''))
        fail.push('record ' + f.position + ': the ' + f.kind + ' shown is not what the record says');
    });
    var m = Object.keys(missing);
    if (m.length) fail.push('facts rest on record' + (m.length > 1 ? 's ' : ' ') + m.join(', ') + ', not verified');
    if (fail.length) { show(false, 'NOT verified: ' + fail.join('; ')); return; }
    if (caveats.length) { show(false, 'NOT verified: ' + caveats.join('; ') + ' (ledgerctl verify-evidence checks them offline)'); return; }
    show(true, 'verified against checkpoint ' + size + ' of ' + origin + ': ' + ev.records.length + ' records, operator key ' + opId +
         (cosignatures ? '; the checkpoint carries ' + cosignatures + ' cosignature lines, not checked here (verify-evidence --witness-policy checks them)' : ''));
  }
  window.addEventListener('beforeprint', function () {
    document.querySelectorAll('details').forEach(function (d) { d.open = true; });
  });
  if (!window.crypto || !crypto.subtle) { show(false, 'NOT verified: this browser has no WebCrypto (open the file directly, not over plain HTTP)'); return; }
  badge.textContent = 'checking…';
  run().catch(function (e) { show(false, 'NOT verified: ' + e.message); });
})();
)js";

  const Json& ev_;
  std::string scope_;
  std::map<uint64_t, RecordInfo> records_;
};

absl::Status RunReport(const Invocation& in) {
  int scopes = in.flags.Has("collective") + in.flags.Has("proposal") + in.flags.Has("org");
  if (scopes != 1) return UsageError("give exactly one of --collective ID, --proposal ID or --org ID");
  const std::string out = in.flags.Get("out");
  if (out.empty()) return UsageError("--out must not be empty");
  LedgerClient client(in.server, in.tls);
  std::vector<std::string> ids;
  std::string scope;
  if (in.flags.Has("proposal")) {
    if (in.flags.Get("proposal").empty()) return UsageError("--proposal must not be empty");
    ids.push_back(in.flags.Get("proposal"));
    scope = absl::StrCat("proposal ", in.flags.Get("proposal"));
  } else {
    const bool collective = in.flags.Has("collective");
    const std::string id = in.flags.Get(collective ? "collective" : "org");
    if (id.empty()) return UsageError(absl::StrCat("--", collective ? "collective" : "org", " must not be empty"));
    std::vector<std::string> collectives;
    if (collective) {
      auto state = client.GetCollective(id);  // NOT_FOUND names an unknown collective
      if (!state.ok()) return state.status();
      collectives.push_back(id);
    } else {  // the collectives it belongs or belonged to
      auto org = client.GetOrganisation(id);
      if (!org.ok()) return org.status();
      collectives.assign(org->collectives().begin(), org->collectives().end());
      collectives.insert(collectives.end(), org->former_collectives().begin(), org->former_collectives().end());
    }
    for (const std::string& c : collectives) {
      v1::ListProposalsRequest request;
      request.mutable_filter()->set_collective_id(c);
      request.mutable_filter()->set_limit(1000);
      while (true) {
        auto page = client.ListProposals(request);
        if (!page.ok()) return page.status();
        for (const auto& p : page->proposals()) ids.push_back(p.proposal_id());
        if (page->next_page_token().empty()) break;
        request.mutable_filter()->set_page_token(page->next_page_token());
      }
    }
    if (ids.empty()) return absl::NotFoundError(absl::StrCat("no proposals for ", collective ? "collective " : "organisation ", id));
    scope = absl::StrCat(collective ? "collective " : "organisation ", id);
  }
  auto evidence = BuildDecisionEvidence(client, ids);
  if (!evidence.ok()) return evidence.status();
  // What the page shows must be what its records say: checked here as
  // verify-evidence would (under the key the server names), before writing.
  auto operator_key = crypto::PublicKey::FromRaw([&] {
    std::string raw;
    crypto::Base64Decode((*evidence)["operator"]["public_key"].get<std::string>(), &raw);
    return raw;
  }());
  if (!operator_key.ok()) return operator_key.status();
  DecisionEvidenceCheck check = CheckDecisionEvidence(*evidence, *operator_key, nullptr);
  if (!check.verified) {
    return absl::DataLossError(absl::StrCat("the server's evidence does not check, so no report was written: ",
                                            absl::StrJoin(check.failures, "; ")));
  }
  Page page(*evidence, scope);
  if (auto s = ReplaceFileDurably(out, page.Render(), 0644); !s.ok()) return s;
  PrintLine(absl::StrCat("wrote ", out, ": ", ids.size(), ids.size() == 1 ? " proposal, " : " proposals, ",
                         (*evidence)["records"].size(), " records proved against checkpoint ",
                         (*evidence)["checkpoint"]["tree_size"].get<uint64_t>(), " of ",
                         (*evidence)["origin"].get<std::string>(), " (operator key ",
                         (*evidence)["operator"]["key_id"].get<std::string>(), ")"));
  return absl::OkStatus();
}

}  // namespace

Command ReportCommand() {
  return {{.name = "report",
           .summary = "Write the decision report: one self-contained HTML page that checks itself.",
           .description =
               "Writes FILE.html: per proposal, its gateways as stages, who voted what and when,\n"
               "vetoes and how each ended, calls with their rationale and who was overruled,\n"
               "refused attempts (reversals highlighted) and tapers, each fact linked to its\n"
               "record. The page embeds the records (base64 of their stored bytes), their\n"
               "inclusion proofs and the signed checkpoint as JSON in <script id=\"evidence\">\n"
               "(the same evidence `ledgerctl evidence` writes), and its script checks them in\n"
               "the browser (WebCrypto SHA-256 and Ed25519) and says so in #verification. No\n"
               "network, no external assets; prints cleanly.",
           .flags = {{"collective", "ID", "every proposal of this collective"},
                     {"proposal", "ID", "one proposal"},
                     {"org", "ID", "every proposal of the collectives this organisation belongs (or belonged) to"},
                     {"out", "FILE", "the HTML file to write", true}}},
          &RunReport};
}

}  // namespace ledger::ctl
