// The portal's one script (served from /portal/assets/, as the Content-Security-Policy
// allows no inline script). It does three things:
// 1. A portal link carries its application token in the fragment (`#key=appsk_…`), which
//    browsers never send to a server: put it into the sign-in form, clear it from the
//    address bar and the history, and submit the form, which exchanges it for a session
//    cookie.
// 2. Times are written in UTC by the server: show them in the browser's time zone.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("sign-in");
  const match = /^#key=([A-Za-z0-9_-]+)$/.exec(window.location.hash);
  if (form && match) {
    history.replaceState(null, "", window.location.pathname + window.location.search);
    form.elements.token.value = match[1];
    form.submit();
  }
  for (const element of document.querySelectorAll("time[datetime]")) {
    const at = new Date(element.getAttribute("datetime"));
    if (!Number.isNaN(at.getTime())) {
      element.title = element.textContent;
      element.textContent = at.toLocaleString();
    }
  }
});

// 3. The recover form's time is typed in the browser's zone: send it as UTC.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form.id === "recover") {
    const local = form.elements.since_local.value;
    const at = new Date(local);
    if (local && !Number.isNaN(at.getTime())) {
      form.elements.since.value = at.toISOString();
    }
  }
});
