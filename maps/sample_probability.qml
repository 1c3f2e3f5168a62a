<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.28.0" styleCategories="AllStyleCategories" hasScaleBasedVisibilityFlag="0" minScale="1e+08" maxScale="0">
  <flags>
    <Identifiable>1</Identifiable>
    <Removable>1</Removable>
    <Searchable>1</Searchable>
    <Private>0</Private>
  </flags>
  <pipe>
    <provider>
      <resampling enabled="false" maxOversampling="2" zoomedInResamplingMethod="nearestNeighbour" zoomedOutResamplingMethod="nearestNeighbour" />
    </provider>
    <rasterrenderer type="singlebandpseudocolor" band="1" opacity="1" alphaBand="-1" nodataColor="" classificationMin="0" classificationMax="1">
      <rasterTransparency />
      <minMaxOrigin>
        <limits>None</limits>
        <extent>WholeRaster</extent>
        <statAccuracy>Estimated</statAccuracy>
        <cumulativeCutLower>0.02</cumulativeCutLower>
        <cumulativeCutUpper>0.98</cumulativeCutUpper>
        <stdDevFactor>2</stdDevFactor>
      </minMaxOrigin>
      <rastershader>
        <colorrampshader colorRampType="INTERPOLATED" classificationMode="1" clip="0" minimumValue="0" maximumValue="1" labelPrecision="2">
          <colorramp name="[source]" type="gradient">
            <Option type="Map">
              <Option name="color1" type="QString" value="255,255,217,255" />
              <Option name="color2" type="QString" value="8,29,88,255" />
              <Option name="direction" type="QString" value="ccw" />
              <Option name="discrete" type="QString" value="0" />
              <Option name="rampType" type="QString" value="gradient" />
              <Option name="spec" type="QString" value="rgb" />
              <Option name="stops" type="QString" value="0.1;241,250,186,255:0.2;214,239,179,255:0.3;171,222,183,255:0.4;115,200,189,255:0.5;64,181,196,255:0.6;36,152,193,255:0.7;32,114,177,255:0.8;35,77,160,255:0.9;31,47,135,255" />
            </Option>
            <prop k="color1" v="255,255,217,255" />
            <prop k="color2" v="8,29,88,255" />
            <prop k="direction" v="ccw" />
            <prop k="discrete" v="0" />
            <prop k="rampType" v="gradient" />
            <prop k="spec" v="rgb" />
            <prop k="stops" v="0.1;241,250,186,255:0.2;214,239,179,255:0.3;171,222,183,255:0.4;115,200,189,255:0.5;64,181,196,255:0.6;36,152,193,255:0.7;32,114,177,255:0.8;35,77,160,255:0.9;31,47,135,255" />
          </colorramp>
          <item label="0.00" value="0" color="#ffffd9" alpha="255" />
          <item label="0.10" value="0.1" color="#f1faba" alpha="255" />
          <item label="0.20" value="0.2" color="#d6efb3" alpha="255" />
          <item label="0.30" value="0.3" color="#abdeb7" alpha="255" />
          <item label="0.40" value="0.4" color="#73c8bd" alpha="255" />
          <item label="0.50" value="0.5" color="#40b5c4" alpha="255" />
          <item label="0.60" value="0.6" color="#2498c1" alpha="255" />
          <item label="0.70" value="0.7" color="#2072b1" alpha="255" />
          <item label="0.80" value="0.8" color="#234da0" alpha="255" />
          <item label="0.90" value="0.9" color="#1f2f87" alpha="255" />
          <item label="1.00" value="1" color="#081d58" alpha="255" />
        </colorrampshader>
      </rastershader>
    </rasterrenderer>
    <brightnesscontrast brightness="0" contrast="0" gamma="1" />
    <huesaturation colorizeOn="0" colorizeRed="255" colorizeGreen="128" colorizeBlue="128" colorizeStrength="100" grayscaleMode="0" saturation="0" invertColors="0" />
    <rasterresampler maxOversampling="2" />
    <resamplingStage>resamplingFilter</resamplingStage>
  </pipe>
  <blendMode>0</blendMode>
</qgis>
