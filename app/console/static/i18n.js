// The console's words in English and Chinese; the language comes from the browser and can be
// switched. Elements carry data-i18n (text), data-i18n-aria (aria-label) or
// data-i18n-placeholder; `t` formats a message with {named} values.

const MESSAGES = {
  en: {
    "app.title": "Dispatch console",
    "lang.switch": "中文",
    "lang.switchLabel": "切换到中文",
    "auth.title": "Sign in to the dispatch console",
    "auth.expired": "Your session has expired. Sign in again; the screen stays as it is.",
    "auth.username": "Username",
    "auth.password": "Password",
    "auth.signIn": "Sign in",
    "auth.signOut": "Sign out",
    "auth.failed": "Wrong username or password.",
    "auth.throttled": "Too many attempts: {message}",
    "region.map": "Map",
    "region.queue": "Incident queue",
    "region.detail": "Incident detail",
    "stream.down": "Live updates lost — reconnecting… What you see may be out of date.",
    "stream.live": "Live",
    "stream.offline": "Offline",
    "queue.empty": "No incidents match the filters.",
    "queue.count": "{n} incidents",
    "queue.unstaffed": "Unstaffed",
    "drill.badge": "DRILL",
    "drill.title": "Exercise: a drill, not a real incident",
    "filter.status": "Status",
    "filter.priority": "Priority",
    "filter.station": "Station",
    "filter.unstaffed": "Unstaffed only",
    "filter.open": "Open",
    "filter.all": "All",
    "filter.any": "Any",
    "detail.none": "Select an incident in the queue (j / k, Enter) or click one on the map.",
    "detail.offers": "Offers",
    "detail.assignments": "Assignments",
    "detail.escalations": "Police",
    "detail.timeline": "Timeline",
    "detail.noOffers": "No offers yet.",
    "detail.noAssignments": "No guard assigned.",
    "detail.noEscalations": "Not escalated to the police.",
    "detail.unstaffed": "UNSTAFFED — no guard accepted in any wave",
    "detail.created": "Created {time} ({age} ago) by {who}",
    "detail.station": "Station: {name}",
    "detail.expiresIn": "expires in {s}",
    "detail.expired": "expired",
    "detail.guardsNeeded": "{assigned} of {required} guards",
    "detail.wave": "wave {n}",
    "detail.tiers": "Guards may:",
    "action.assign": "Assign guard",
    "action.escalate": "Escalate to police",
    "action.cancel": "Cancel",
    "action.resolve": "Resolve",
    "action.close": "Close",
    "action.withdraw": "Withdraw",
    "action.instruct": "Send instruction",
    "action.policeAck": "Police acknowledged",
    "action.policeArrived": "Police arrived",
    "action.policeHandover": "Handed over",
    "action.confirm": "{action} incident {id}?",
    "assign.title": "Nearby guards",
    "assign.none": "No dispatchable guard within 5 km.",
    "assign.pick": "Assign",
    "instruct.placeholder": "Instruction for the guards on this incident",
    "create.title": "New incident",
    "create.where": "Location",
    "create.category": "Category",
    "create.priority": "Priority",
    "create.description": "Description",
    "create.address": "Address",
    "create.submit": "Create incident",
    "create.cancel": "Cancel",
    "create.hint": "Click the map to report an incident at that place (n: at the map centre).",
    "error.generic": "The server refused: {message}",
    "error.network": "The server cannot be reached.",
    "keys.help": "j/k move · Enter open · n new · a assign · e escalate · Esc close",
    "legend.title": "Guards",
    "legend.unit": "Police unit",
    "unit.label": "Police unit {call_sign} ({status})",
    "ago.s": "{n}s",
    "ago.m": "{n}m",
    "ago.h": "{n}h {m}m",
    "who.signedIn": "{name} ({role})",
    "tabs.label": "Lists",
    "region.intel": "Intel queue",
    "region.broadcasts": "Broadcasts",
    "tabs.incidents": "Incidents",
    "tabs.intel": "Intel",
    "tabs.broadcasts": "Broadcasts",
    "keys.helpIntel": "j/k move · u useful · x not useful · o acted on · 1/2/3 lists · Esc close",
    "keys.helpBroadcasts": "j/k move · n new broadcast · 1/2/3 lists",
    "filter.state": "State",
    "filter.activeOnly": "Active only",
    "intel.count": "{n} intel reports",
    "intel.empty": "No intel reports in this state.",
    "intel.noStation": "no station",
    "intel.verdictNote": "Police note: {note}",
    "intel.mark.useful": "Useful",
    "intel.mark.not_useful": "Not useful",
    "intel.mark.acted_on": "Acted on",
    "intel.noteLabel": "{verdict} — note for the guard",
    "intel.send": "Send verdict",
    "intel.marker": "Intel report",
    "intelState.new": "New",
    "intelState.useful": "Useful",
    "intelState.not_useful": "Not useful",
    "intelState.acted_on": "Acted on",
    "subject.suspicious_person": "Suspicious person",
    "subject.suspicious_vehicle": "Suspicious vehicle",
    "subject.hazard": "Hazard",
    "subject.wanted_sighting": "Wanted person sighted",
    "subject.other": "Other",
    "broadcast.count": "{n} broadcasts",
    "broadcast.empty": "No broadcasts.",
    "broadcast.new": "New broadcast at the map centre (n)",
    "broadcast.hint": "Click the map to place a broadcast (n: at the map centre).",
    "broadcast.title": "New area broadcast",
    "broadcast.centre": "Centre",
    "broadcast.radius": "Radius (metres)",
    "broadcast.text": "Message to the guards",
    "broadcast.minutes": "Expires in (minutes)",
    "broadcast.submit": "Send broadcast",
    "broadcast.counts": "Guards {recipients} · delivered {delivered} · acknowledged {acknowledged}",
    "broadcast.countsTitle": "Guards it was queued for, sent to a phone, and acknowledged by the phone",
    "broadcast.radiusShort": "radius {m}",
    "broadcast.until": "until {time}",
    "broadcast.expired": "expired",
  },
  zh: {
    "app.title": "联动调度台",
    "lang.switch": "English",
    "lang.switchLabel": "Switch to English",
    "auth.title": "登录联动调度台",
    "auth.expired": "登录已过期，请重新登录；当前画面会保留。",
    "auth.username": "用户名",
    "auth.password": "密码",
    "auth.signIn": "登录",
    "auth.signOut": "退出",
    "auth.failed": "用户名或密码错误。",
    "auth.throttled": "尝试次数过多：{message}",
    "region.map": "地图",
    "region.queue": "事件队列",
    "region.detail": "事件详情",
    "stream.down": "实时连接中断，正在重连……当前显示可能已过时。",
    "stream.live": "实时",
    "stream.offline": "离线",
    "queue.empty": "没有符合筛选条件的事件。",
    "queue.count": "共 {n} 起事件",
    "queue.unstaffed": "无人响应",
    "drill.badge": "演练",
    "drill.title": "演练：非真实警情",
    "filter.status": "状态",
    "filter.priority": "优先级",
    "filter.station": "派出所",
    "filter.unstaffed": "仅无人响应",
    "filter.open": "进行中",
    "filter.all": "全部",
    "filter.any": "不限",
    "detail.none": "在队列中选择事件（j / k，回车）或在地图上点击事件。",
    "detail.offers": "派单",
    "detail.assignments": "到场保安",
    "detail.escalations": "警方",
    "detail.timeline": "时间线",
    "detail.noOffers": "尚未派单。",
    "detail.noAssignments": "尚无保安接单。",
    "detail.noEscalations": "未上报警方。",
    "detail.unstaffed": "无人响应——各轮派单均无保安接单",
    "detail.created": "{time}创建（{age}前），创建者 {who}",
    "detail.station": "辖区派出所：{name}",
    "detail.expiresIn": "{s}后过期",
    "detail.expired": "已过期",
    "detail.guardsNeeded": "已到 {assigned} / 需 {required} 名保安",
    "detail.wave": "第 {n} 轮",
    "detail.tiers": "保安可执行：",
    "action.assign": "指派保安",
    "action.escalate": "上报警方",
    "action.cancel": "撤销",
    "action.resolve": "处置完毕",
    "action.close": "结案",
    "action.withdraw": "撤回",
    "action.instruct": "发送指令",
    "action.policeAck": "警方已确认",
    "action.policeArrived": "警方已到场",
    "action.policeHandover": "已移交警方",
    "action.confirm": "确定对事件 {id} 执行“{action}”？",
    "assign.title": "附近保安",
    "assign.none": "5 公里内没有可调度的保安。",
    "assign.pick": "指派",
    "instruct.placeholder": "发给本事件保安的指令",
    "create.title": "新建事件",
    "create.where": "位置",
    "create.category": "类别",
    "create.priority": "优先级",
    "create.description": "描述",
    "create.address": "地址",
    "create.submit": "创建事件",
    "create.cancel": "取消",
    "create.hint": "点击地图即可在该处上报事件（n：在地图中心）。",
    "error.generic": "服务器拒绝：{message}",
    "error.network": "无法连接服务器。",
    "keys.help": "j/k 移动 · 回车 打开 · n 新建 · a 指派 · e 上报 · Esc 关闭",
    "legend.title": "保安",
    "legend.unit": "警力",
    "unit.label": "警力 {call_sign}（{status}）",
    "ago.s": "{n}秒",
    "ago.m": "{n}分",
    "ago.h": "{n}小时{m}分",
    "who.signedIn": "{name}（{role}）",
    "tabs.label": "列表",
    "region.intel": "情报队列",
    "region.broadcasts": "区域广播",
    "tabs.incidents": "事件",
    "tabs.intel": "情报",
    "tabs.broadcasts": "区域广播",
    "keys.helpIntel": "j/k 移动 · u 有价值 · x 无价值 · o 已处置 · 1/2/3 切换列表 · Esc 关闭",
    "keys.helpBroadcasts": "j/k 移动 · n 新建广播 · 1/2/3 切换列表",
    "filter.state": "状态",
    "filter.activeOnly": "仅生效中",
    "intel.count": "共 {n} 条情报",
    "intel.empty": "该状态下没有情报。",
    "intel.noStation": "无辖区",
    "intel.verdictNote": "民警批注：{note}",
    "intel.mark.useful": "有价值",
    "intel.mark.not_useful": "无价值",
    "intel.mark.acted_on": "已处置",
    "intel.noteLabel": "{verdict} — 给保安的批注",
    "intel.send": "提交研判",
    "intel.marker": "情报",
    "intelState.new": "待研判",
    "intelState.useful": "有价值",
    "intelState.not_useful": "无价值",
    "intelState.acted_on": "已处置",
    "subject.suspicious_person": "可疑人员",
    "subject.suspicious_vehicle": "可疑车辆",
    "subject.hazard": "安全隐患",
    "subject.wanted_sighting": "发现在逃人员",
    "subject.other": "其他",
    "broadcast.count": "共 {n} 条广播",
    "broadcast.empty": "没有广播。",
    "broadcast.new": "在地图中心新建广播（n）",
    "broadcast.hint": "点击地图设置广播中心（n：在地图中心）。",
    "broadcast.title": "新建区域广播",
    "broadcast.centre": "中心",
    "broadcast.radius": "半径（米）",
    "broadcast.text": "发给保安的内容",
    "broadcast.minutes": "有效时长（分钟）",
    "broadcast.submit": "发送广播",
    "broadcast.counts": "保安 {recipients} 名 · 已送达 {delivered} · 已确认 {acknowledged}",
    "broadcast.countsTitle": "应接收的保安、已发送到手机的、手机已确认的",
    "broadcast.radiusShort": "半径 {m}",
    "broadcast.until": "至 {time}",
    "broadcast.expired": "已过期",
  },
};

const TERMS = {
  en: {
    category: {
      assault: "Assault", robbery: "Robbery", theft: "Theft", fire: "Fire", medical: "Medical",
      disturbance: "Disturbance", suspicious: "Suspicious", alarm: "Alarm", traffic: "Traffic",
      missing_person: "Missing person", other: "Other",
    },
    status: {
      new: "New", dispatching: "Dispatching", assigned: "Assigned", on_scene: "On scene",
      resolved: "Resolved", closed: "Closed", cancelled: "Cancelled", en_route: "En route",
      cleared: "Cleared", sent: "Sent", acknowledged: "Acknowledged",
      police_on_scene: "Police on scene", handed_over: "Handed over", accepted: "Accepted",
      declined: "Declined", expired: "Expired", withdrawn: "Withdrawn", open: "Open",
    },
    guardState: {
      available: "Available", offered: "Offered", en_route: "En route", on_scene: "On scene",
      stale: "Stale position", offline: "Offline", unavailable: "Not dispatchable",
    },
    priority: { 1: "P1 critical", 2: "P2 high", 3: "P3 medium", 4: "P4 low" },
    tier: {
      observe_report: "Observe and report", secure_scene: "Secure the scene", first_aid: "First aid",
      crowd_guidance: "Crowd guidance", detain_until_police: "Hold until police arrive",
    },
    reason: {
      policy: "by policy", no_guard: "no guard", backup_request: "backup requested",
      operator: "by operator",
    },
    role: {
      admin: "admin", operator: "operator", supervisor: "supervisor",
      company_manager: "company manager", integration: "integration",
    },
  },
  zh: {
    category: {
      assault: "殴打", robbery: "抢劫", theft: "盗窃", fire: "火情", medical: "急救",
      disturbance: "滋扰", suspicious: "可疑情况", alarm: "报警器", traffic: "交通",
      missing_person: "人员走失", other: "其他",
    },
    status: {
      new: "新建", dispatching: "派单中", assigned: "已接单", on_scene: "已到场",
      resolved: "已处置", closed: "已结案", cancelled: "已撤销", en_route: "前往中",
      cleared: "已离场", sent: "已上报", acknowledged: "警方已确认",
      police_on_scene: "警方已到场", handed_over: "已移交", accepted: "已接受",
      declined: "已拒绝", expired: "已超时", withdrawn: "已撤回", open: "进行中",
    },
    guardState: {
      available: "空闲", offered: "待接单", en_route: "前往中", on_scene: "已到场",
      stale: "位置过时", offline: "离线", unavailable: "不可调度",
    },
    priority: { 1: "一级 紧急", 2: "二级 高", 3: "三级 中", 4: "四级 低" },
    tier: {
      observe_report: "观察报告", secure_scene: "保护现场", first_aid: "现场救护",
      crowd_guidance: "疏导人群", detain_until_police: "扭送候警",
    },
    reason: {
      policy: "按预案", no_guard: "无保安响应", backup_request: "保安请求支援", operator: "调度员上报",
    },
    role: {
      admin: "管理员", operator: "调度员", supervisor: "监管民警",
      company_manager: "公司管理员", integration: "系统接口",
    },
  },
};

let lang = pickLanguage();

function pickLanguage() {
  const saved = localStorage.getItem("console.lang");
  if (saved === "en" || saved === "zh") return saved;
  const wanted = navigator.languages || [navigator.language || "en"];
  return wanted.some((tag) => tag.toLowerCase().startsWith("zh")) ? "zh" : "en";
}

export function language() {
  return lang;
}

export function setLanguage(next) {
  lang = next;
  localStorage.setItem("console.lang", next);
  applyTranslations(document);
}

// Another module's strings (the reports' own), merged in before the page is translated.
export function addMessages(more) {
  for (const language of Object.keys(MESSAGES)) Object.assign(MESSAGES[language], more[language]);
}

export function t(key, values = {}) {
  const text = MESSAGES[lang][key] ?? MESSAGES.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in values ? String(values[name]) : ""));
}

export function term(kind, value) {
  return TERMS[lang][kind]?.[value] ?? TERMS.en[kind]?.[value] ?? String(value);
}

export function terms(kind) {
  return Object.keys(TERMS.en[kind]);
}

export function applyTranslations(root) {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-aria]")) {
    el.setAttribute("aria-label", t(el.dataset.i18nAria));
  }
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) {
    el.setAttribute("placeholder", t(el.dataset.i18nPlaceholder));
  }
  document.title = t("app.title");
}
