/* Interface strings in Chinese and English; the page switches with the top-right button. */
window.TWIN_I18N = {
  zh: {
    title: "RongTwin 一张图", scenario: "情景", compare: "对比", layers: "图层", colourBy: "建筑着色",
    byHeight: "高度", byUse: "用途", byFlood: "洪涝暴露", bookmarks: "视角书签", saveView: "保存视角",
    simulations: "模拟", bimCheck: "BIM 审查", check: "审查", token: "访问令牌", signIn: "登录",
    inspect: "属性", clickHint: "点击地图上的要素查看属性。", hillshade: "地形晕渲", flood: "淹没水深",
    buildings: "建筑", road_links: "道路", trips: "车辆轨迹", crowd: "人群", sensors: "传感器", bim: "BIM 模型",
    water: "水系", parcels: "地块", pois: "兴趣点", areas: "区域", run: "运行", running: "运行中", done: "完成",
    failed: "失败", queued: "排队", cancelled: "已取消", passed: "通过", notPassed: "不通过", overview: "全景",
    topDown: "俯视", time: "时间", noSeries: "无时序结果", loading: "加载中…", base: "现状", value: "数值",
    flood_engine: "洪涝", traffic_engine: "交通", crowd_engine: "人群疏散", report: "报告", noEngines: "本服务未安装模拟引擎",
    chooseFile: "请选择 IFC 文件", road_vc: "道路 V/C", step: "步", noReading: "无读数",
    roadClosed: "封闭", floodClosed: "积水封闭", toTheEnd: "至结束", floodedBy: "积水封路据",
    ok: "正常", warn: "预警", alarm: "报警", unknown: "未知", lost: "状态未知", progressLost: "进度连接中断",
    unreachable: "无法连接地图服务器，请检查网络或服务是否在运行", errSignIn: "需要登录（访问令牌）",
    errForbidden: "无权执行此操作", errNotFound: "未找到", errServer: "服务器出错", errRequest: "请求无效",
    alerts: "告警", noAlerts: "无告警：传感器读数均正常", since: "始于", simulatedReading: "模拟读数", threshold: "阈值", flyTo: "点击定位到该传感器",
    pickSite: "选址", siteFromModel: "位置：按模型自带坐标", siteAt: "位置", picking: "请在地图上点击建筑位置…", rotation: "旋转 °",
    pickHint: "按“选址”，在地图上点击建筑所在位置，然后重新审查",
    sharedBookmark: "共享视角（所有人可见）", localBookmark: "仅本浏览器", remove: "删除", bookmarkName: "视角名称"
  },
  en: {
    title: "RongTwin one map", scenario: "Scenario", compare: "Compare", layers: "Layers", colourBy: "Colour buildings by",
    byHeight: "height", byUse: "use", byFlood: "flood exposure", bookmarks: "Camera bookmarks", saveView: "Save view",
    simulations: "Simulations", bimCheck: "BIM check", check: "Check", token: "Access token", signIn: "Sign in",
    inspect: "Inspect", clickHint: "Click a feature on the map.", hillshade: "Terrain (hillshade)", flood: "Flood depth",
    buildings: "Buildings", road_links: "Roads", trips: "Vehicle trips", crowd: "Crowd", sensors: "Sensors", bim: "BIM models",
    water: "Water", parcels: "Parcels", pois: "POIs", areas: "Areas", run: "Run", running: "running", done: "done",
    failed: "failed", queued: "queued", cancelled: "cancelled", passed: "PASS", notPassed: "FAIL", overview: "Overview",
    topDown: "Top down", time: "Time", noSeries: "no time series", loading: "loading…", base: "base", value: "value",
    flood_engine: "Flood", traffic_engine: "Traffic", crowd_engine: "Crowd", report: "report", noEngines: "no simulation engine installed here",
    chooseFile: "choose an IFC file", road_vc: "Roads V/C", step: "step", noReading: "no reading",
    roadClosed: "closed", floodClosed: "closed by flood water", toTheEnd: "to the end", floodedBy: "roads closed by flood",
    ok: "ok", warn: "warning", alarm: "alarm", unknown: "unknown", lost: "status unknown", progressLost: "lost the progress stream",
    unreachable: "cannot reach the map server; check the network or whether the server is running", errSignIn: "sign-in needed (access token)",
    errForbidden: "not allowed for your role", errNotFound: "not found", errServer: "the server failed", errRequest: "the request was refused",
    alerts: "Alerts", noAlerts: "No alerts: every sensor reads normal", since: "since", simulatedReading: "simulated reading", threshold: "threshold", flyTo: "click to fly to the sensor",
    pickSite: "Pick site", siteFromModel: "site: from the model", siteAt: "site", picking: "click where the building stands…", rotation: "rotation °",
    pickHint: "press 'Pick site', click where the building stands on the map and check again",
    sharedBookmark: "shared view (everyone sees it)", localBookmark: "this browser only", remove: "remove", bookmarkName: "name of the view"
  }
};
