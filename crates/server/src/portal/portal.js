// The portal's one script (served from /portal/assets/, as the Content-Security-Policy
// allows no inline script). It does four things:
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

// 4. The log's time filters are typed in the browser's zone: each `data-utc` input fills
//    the hidden field it names with the UTC time (and shows the one given, when there is).
document.addEventListener("DOMContentLoaded", () => {
  for (const input of document.querySelectorAll("input[data-utc]")) {
    const hidden = input.form.elements[input.dataset.utc];
    const at = new Date(hidden.value);
    if (hidden.value && !Number.isNaN(at.getTime())) {
      const local = new Date(at.getTime() - at.getTimezoneOffset() * 60000);
      input.value = local.toISOString().slice(0, 16);
    }
    input.addEventListener("change", () => {
      const typed = new Date(input.value);
      hidden.value = input.value && !Number.isNaN(typed.getTime()) ? typed.toISOString() : "";
    });
  }
});
